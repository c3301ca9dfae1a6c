"""Reduced-precision inference (TEST.AMP): every inference path runs the network under bfloat16
autocast, post-processing gets float32, and a briefly trained model predicts as in float32; the
MSDeformAttn op's dtype rules; the transformers-style model under autocast and in bfloat16."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from mask2former.layers import _msda_build
from mask2former.layers.ms_deform_attn import ms_deform_attn
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference
from mask2former.modeling import build_model
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA
from mask2former.predictor import Predictor
from mask2former.structures import Instances
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.tiny_config import tiny_cfg

AMP = {"TEST.AMP.ENABLED": True}
# the module, which mask2former.layers shadows with the function of the same name
msda_module = importlib.import_module("mask2former.layers.ms_deform_attn")


def _scene(seed: int, height: int = 64, width: int = 80) -> tuple[torch.Tensor, Instances]:
    """A noisy image with two flat-coloured rectangles of classes 0 and 3, and their masks."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 60, (3, height, width), generator=gen).float()
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    for index, (top, left) in enumerate(torch.randint(4, 24, (2, 2), generator=gen).tolist()):
        bottom, right = top + 20 + 10 * index, left + 24 + 8 * index
        masks[index, top:bottom, left:right] = True
        image[:, masks[index]] = torch.tensor([220.0, 40.0, 40.0][:: 1 - 2 * index])[:, None]
    masks[0] &= ~masks[1]
    instances = Instances((height, width))
    instances.gt_classes = torch.tensor([0, 3])
    instances.gt_masks = masks
    return image, instances


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for a few iterations, and its weights file."""
    torch.manual_seed(0)
    # every query takes part in panoptic inference, so its output is not trivially empty
    model = build_model(tiny_cfg(**{"MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0}))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(12):
        batch = []
        for seed in (2 * step, 2 * step + 1):
            image, instances = _scene(seed)
            batch.append({"image": image, "instances": instances})
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("amp") / "trained.pth"
    torch.save({"model": model.state_dict()}, path)
    return model, str(path)


class DtypeRecorder:
    """Records the output dtype of a backbone conv, a pixel-decoder encoder linear, the mask
    embedding and the class head on every forward."""

    def __init__(self, model: nn.Module) -> None:
        head = model.sem_seg_head
        modules = {
            "backbone": model.backbone.stem.conv1,
            "encoder": head.pixel_decoder.transformer.encoder.layers[0].linear1,
            "mask_embed": head.predictor.mask_embed,
            "class_embed": head.predictor.class_embed,
        }
        self.dtypes: dict[str, list[torch.dtype]] = {name: [] for name in modules}
        for name, module in modules.items():
            module.register_forward_hook(
                lambda _m, _i, out, name=name: self.dtypes[name].append(out.dtype)
            )

    def seen(self) -> set[torch.dtype]:
        return {dtype for values in self.dtypes.values() for dtype in values}

    def last(self) -> dict[str, torch.dtype]:
        return {name: values[-1] for name, values in self.dtypes.items()}


# the network in bfloat16, except the class head (thresholds act on its softmax)
REDUCED = {
    "backbone": torch.bfloat16,
    "encoder": torch.bfloat16,
    "mask_embed": torch.bfloat16,
    "class_embed": torch.float32,
}


def _inputs(seeds: tuple[int, ...]) -> list[dict]:
    return [{"image": _scene(seed)[0], "height": 64, "width": 80} for seed in seeds]


def test_config_keys_default_off_and_bad_values_name_the_key():
    cfg = tiny_cfg()
    assert (cfg.TEST.AMP.ENABLED, cfg.TEST.AMP.DTYPE, cfg.TEST.IMS_PER_BATCH) == (
        False,
        "bfloat16",
        1,
    )
    assert build_model(cfg).inference_dtype is None
    assert build_model(tiny_cfg(**AMP)).inference_dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"TEST\.AMP\.DTYPE='float16' is not supported on the CPU"):
        build_model(tiny_cfg(**AMP, **{"TEST.AMP.DTYPE": "float16"}))
    with pytest.raises(ValueError, match=r"TEST\.AMP\.DTYPE must be one of .* got 'fp8'"):
        build_model(tiny_cfg(**AMP, **{"TEST.AMP.DTYPE": "fp8"}))


def test_bfloat16_network_predicts_like_float32(trained):
    model, _ = trained
    recorder = DtypeRecorder(model)
    inputs = _inputs((100, 101, 102))
    with torch.no_grad():
        model.inference_dtype = None
        reference = model(inputs)
        assert recorder.seen() == {torch.float32}
        model.inference_dtype = torch.bfloat16
        try:
            reduced = model(inputs)
        finally:
            model.inference_dtype = None
    assert recorder.last() == REDUCED
    for ref, out in zip(reference, reduced):
        # post-processing got float32 network outputs
        assert out["sem_seg"].dtype == torch.float32
        assert out["instances"].scores.dtype == torch.float32
        torch.testing.assert_close(out["sem_seg"], ref["sem_seg"], rtol=0, atol=0.03)
        agreement = (out["sem_seg"].argmax(0) == ref["sem_seg"].argmax(0)).float().mean()
        assert agreement >= 0.98
        ids, ref_ids = out["panoptic_seg"][0], ref["panoptic_seg"][0]
        assert ref_ids.unique().numel() > 1
        assert (ids == ref_ids).float().mean() >= 0.98
        # near-tied (query, class) scores may swap places in the top-k: compare them sorted
        torch.testing.assert_close(
            out["instances"].scores.sort().values,
            ref["instances"].scores.sort().values,
            rtol=0,
            atol=0.01,
        )


def test_callers_autocast_does_not_reach_post_processing(trained):
    """A user's own ``torch.autocast`` around ``model(inputs)`` gives the TEST.AMP results:
    the post-processing still runs in float32."""
    model, _ = trained
    inputs = _inputs((103,))
    model.inference_dtype = torch.bfloat16
    try:
        with torch.no_grad():
            expected = model(inputs)[0]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = model(inputs)[0]
    finally:
        model.inference_dtype = None
    assert got["sem_seg"].dtype == torch.float32
    assert torch.equal(got["sem_seg"], expected["sem_seg"])
    assert torch.equal(got["panoptic_seg"][0], expected["panoptic_seg"][0])
    assert torch.equal(got["instances"].scores, expected["instances"].scores)


def test_training_forward_ignores_the_inference_dtype(trained):
    model, _ = trained
    image, instances = _scene(7)
    batch = [{"image": image, "instances": instances}]
    model.train()
    try:
        torch.manual_seed(3)
        plain = model(batch)
        model.inference_dtype = torch.bfloat16
        torch.manual_seed(3)
        with_amp_key = model(batch)
    finally:
        model.inference_dtype = None
        model.eval()
    assert plain.keys() == with_amp_key.keys()
    for name in plain:
        assert torch.equal(plain[name], with_amp_key[name]), name


def test_predictor_and_tta_run_under_autocast(trained):
    _, weights = trained
    cfg = tiny_cfg(**AMP, **{"MODEL.WEIGHTS": weights})
    predictor = Predictor(cfg, input_format="RGB")
    reference = Predictor(tiny_cfg(**{"MODEL.WEIGHTS": weights}), input_format="RGB")
    recorder = DtypeRecorder(predictor.model)
    image = _scene(200)[0].permute(1, 2, 0).numpy().astype(np.uint8)
    out, ref = predictor(image), reference(image)
    assert recorder.last() == REDUCED
    torch.testing.assert_close(out["sem_seg"], ref["sem_seg"], rtol=0, atol=0.03)

    tta_cfg = tiny_cfg(**AMP, **{"TEST.AUG.MIN_SIZES": (48, 64), "TEST.AUG.FLIP": True})
    tta = SemanticSegmentorWithTTA(tta_cfg, predictor.model)
    with torch.no_grad():
        tta(_inputs((201,)))
    # 2 sizes x (plain + flipped), every pass in bfloat16
    assert recorder.dtypes["backbone"][1:] == [torch.bfloat16] * 4


def _msda_inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[6, 7], [3, 4]])
    starts = torch.tensor([0, 42])
    value = torch.randn(2, 54, 2, 8, generator=gen)
    locations = torch.rand(2, 5, 2, 2, 3, 2, generator=gen) * 1.2 - 0.1
    weights = torch.rand(2, 5, 2, 2, 3, generator=gen)
    return value.to(dtype), shapes, starts, locations.to(dtype), weights.to(dtype)


def _load_kernels() -> None:
    status = _msda_build.load_extension()
    if not status.loaded:
        pytest.skip(f"MSDeformAttn kernels unavailable: {status.origin}")


@pytest.mark.parametrize("backend", ["pytorch", "cpu"])
def test_msda_mixed_dtypes_run_in_float32(backend, monkeypatch):
    if backend == "cpu":
        _load_kernels()
    monkeypatch.setattr(msda_module, "_backend_for", lambda device_type: backend)
    value, shapes, starts, locations, weights = _msda_inputs()
    # bfloat16 value, float32 locations: float32 maths on the rounded value, bfloat16 result
    low_value = value.bfloat16()
    output = ms_deform_attn(low_value, shapes, starts, locations, weights)
    expected = ms_deform_attn_reference(low_value.float(), shapes, starts, locations, weights)
    assert output.dtype == torch.bfloat16
    torch.testing.assert_close(output, expected.bfloat16(), rtol=0, atol=0)
    # float32 value, bfloat16 locations and weights: a float32 result
    low_locations, low_weights = locations.bfloat16(), weights.bfloat16()
    output = ms_deform_attn(value, shapes, starts, low_locations, low_weights)
    expected = ms_deform_attn_reference(
        value, shapes, starts, low_locations.float(), low_weights.float()
    )
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)


def test_msda_op_runs_in_float32_under_autocast():
    _load_kernels()
    inputs = _msda_inputs(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = torch.ops.mask2former.ms_deform_attn_forward(*inputs)
    assert output.dtype == torch.float32
    upcast = [t.float() if t.is_floating_point() else t for t in inputs]
    torch.testing.assert_close(output, ms_deform_attn_reference(*upcast), rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["autocast", "to_bfloat16"])
def test_transformers_style_model_in_bfloat16(mode):
    torch.manual_seed(0)
    config = Mask2FormerConfig(**tiny_config_dict(num_labels=4))
    model = Mask2FormerForUniversalSegmentation(config).eval()
    processor = Mask2FormerImageProcessor()
    pixel_values = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(pixel_values)
        if mode == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                outputs = model(pixel_values)
        else:
            outputs = model.to(torch.bfloat16)(pixel_values.bfloat16())
    assert outputs.masks_queries_logits.dtype == torch.bfloat16
    for name in ("class_queries_logits", "masks_queries_logits"):
        scale = getattr(reference, name).abs().max()
        torch.testing.assert_close(
            getattr(outputs, name).float(), getattr(reference, name), rtol=0, atol=0.05 * scale
        )
    sizes = [(96, 128), (90, 120)]
    semantic = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    semantic_ref = processor.post_process_semantic_segmentation(reference, target_sizes=sizes)
    for got, want, size in zip(semantic, semantic_ref, sizes):
        assert got.shape == size
        assert (got == want).float().mean() >= 0.95
    for method in ("post_process_instance_segmentation", "post_process_panoptic_segmentation"):
        results = getattr(processor, method)(outputs, threshold=0.0, target_sizes=sizes)
        assert [r["segmentation"].shape for r in results] == sizes
        assert all(r["segmentation"].dtype != torch.bfloat16 for r in results)
