"""tools/analyze_model.py and modeling/analysis.py (parameter / FLOP / activation counts)."""

import argparse
import importlib.util
import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mask2former.data import DatasetCatalog
from mask2former.layers import _msda_build
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference
from mask2former.modeling import build_model
from mask2former.modeling.analysis import parameter_counts
from mask2former.modeling.flop_count import count_flops
from tests.cli_helpers import REPO_ROOT, run_cli
from tests.optional import unavailable
from tests.tiny_config import BASE_CONFIG, tiny_cfg

# N, Lq, heads M, levels L, points P, channels per head D
N, LQ, M, L, P, D = 2, 7, 2, 3, 4, 8
SHAPES = torch.tensor([[6, 5], [3, 3], [2, 1]])
EXPECTED_MSDA_FLOPS = 5 * N * LQ * M * L * P * D  # 4 bilinear + 1 weighting MACs per sample


def _msda_inputs():
    generator = torch.Generator().manual_seed(0)
    num_values = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    value = torch.randn(N, num_values, M, D, generator=generator)
    locations = torch.rand(N, LQ, M, L, P, 2, generator=generator)
    weights = torch.rand(N, LQ, M, L, P, generator=generator)
    return value, locations, weights


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "analyze_model", f"{REPO_ROOT}/tools/analyze_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceMSDA(nn.Module):
    def forward(self, value, locations, weights):
        start = torch.cat([SHAPES.new_zeros(1), (SHAPES[:, 0] * SHAPES[:, 1]).cumsum(0)[:-1]])
        return ms_deform_attn_reference(value, SHAPES, start, locations, weights)


class _KernelMSDA(nn.Module):
    def forward(self, value, locations, weights):
        start = torch.cat([SHAPES.new_zeros(1), (SHAPES[:, 0] * SHAPES[:, 1]).cumsum(0)[:-1]])
        return torch.ops.mask2former.ms_deform_attn_forward(
            value, SHAPES, start, locations, weights
        )


def test_msda_flops_agree_between_reference_and_kernel_op():
    inputs = _msda_inputs()
    reference = count_flops(_ReferenceMSDA(), *inputs)
    assert reference.by_operator["grid_sampler_2d"] == EXPECTED_MSDA_FLOPS

    status = _msda_build.load_extension()
    if not status.loaded:
        unavailable(f"needs the compiled MSDeformAttn kernels ({status.origin})", ci_has_it=True)
    kernel = count_flops(_KernelMSDA(), *inputs)
    assert kernel.by_operator == {"ms_deform_attn_forward": EXPECTED_MSDA_FLOPS}


def test_parameter_counts_per_top_level_module():
    model = build_model(tiny_cfg())
    counts = parameter_counts(model)
    assert counts[""] == sum(p.numel() for p in model.parameters())
    assert counts[""] == sum(v for k, v in counts.items() if k)
    assert {"backbone", "sem_seg_head"} <= set(counts)


def test_flop_and_activation_tasks_count_the_pixel_decoder_msda(capsys):
    tool = _load_tool()
    args = argparse.Namespace(num_inputs=1, generated_inputs=True, input_size=[64, 64])
    with torch.no_grad():
        tool.do_flop(tiny_cfg(), args)
        tool.do_activation(tiny_cfg(), args)
    out = capsys.readouterr().out
    assert re.search(r"Total GFLOPs: [0-9.]+ \+- 0\b", out), out
    assert re.search(r"Total activations \(M\): [0-9.]+ \+- 0\b", out), out
    # One encoder layer over res3..res5 (8x8, 4x4, 2x2 tokens, each a query), MASK_FORMER.NHEADS
    # = 4 heads of 32 / 4 channels, 3 levels, 4 points (fixed, as in the original).
    expected = 5 * (64 + 16 + 4) * 4 * 3 * 4 * 8
    match = re.search(r"^  (?:grid_sampler_2d|ms_deform_attn_forward): ([0-9.e-]+)$", out, re.M)
    assert match, out
    assert float(match.group(1)) * 1e9 == pytest.approx(expected, rel=1e-3)


def test_counts_on_dataset_images_when_registered(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="mask2former.analyze_model")
    tool = _load_tool()
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    record = {"file_name": str(tmp_path / "a.png"), "height": 64, "width": 64, "image_id": 0}
    name = "analyze_model_test_images"
    DatasetCatalog.register(name, lambda: [dict(record)])
    try:
        cfg = tiny_cfg(**{"DATASETS.TEST": (name,)})
        for generated in (False, True):
            args = argparse.Namespace(num_inputs=1, generated_inputs=generated, input_size=None)
            with torch.no_grad():
                tool.do_activation(cfg, args)
    finally:
        DatasetCatalog.remove(name)
    totals = re.findall(r"Total activations \(M\): ([0-9.]+)", capsys.readouterr().out)
    # Activations depend only on shapes: a 64x64 dataset image counts as a generated one.
    assert len(totals) == 2 and totals[0] == totals[1]
    assert f"first 1 images of {name}" in caplog.text


def test_overrides_may_follow_the_task_list():
    tool = _load_tool()
    args = tool.parse_args(
        ["--config-file", "c.yaml", "--tasks", "flop", "parameter", "MODEL.DEVICE", "cpu"]
    )
    assert args.tasks == ["flop", "parameter"] and args.opts == ["MODEL.DEVICE", "cpu"]
    args = tool.parse_args(["--tasks", "flop", "--config-file", "c.yaml", "MODEL.DEVICE", "cpu"])
    assert args.tasks == ["flop"] and args.opts == ["MODEL.DEVICE", "cpu"]
    with pytest.raises(SystemExit):
        tool.parse_args(["--config-file", "c.yaml", "--tasks", "flops"])


@pytest.mark.slow
def test_r50_coco_panoptic_has_44m_parameters():
    out = run_cli(
        "tools/analyze_model.py",
        ["--config-file", BASE_CONFIG, "--tasks", "parameter", "MODEL.DEVICE", "cpu"],
    )
    total = float(re.search(r"Total parameters: ([0-9.]+) M", out).group(1))
    assert 43.0 <= total <= 45.0, out[-2000:]
    assert re.search(r"^  backbone: 2[0-9.]+ M$", out, re.M), out[-2000:]
