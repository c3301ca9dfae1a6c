"""Every model YAML under configs/ builds (on the meta device) with the paper's sizes."""

import importlib.util
from pathlib import Path

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.modeling import build_model

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_ROOT = REPO_ROOT / "configs"
ALL_YAMLS = sorted(CONFIG_ROOT.rglob("*.yaml"))
R50_COCO_PANOPTIC = CONFIG_ROOT / "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"
SWIN_T_COCO_PANOPTIC = (
    CONFIG_ROOT / "coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml"
)

# Parameter counts (millions) from the Mask2Former paper; ADE20K/COCO/Cityscapes variants only
# differ in the class count.
PAPER_PARAMS_M = {
    "R50": 44,
    "R101": 63,
    "swin_tiny": 47,
    "swin_small": 69,
    "swin_base": 107,
    "swin_large": 216,
}


def _load_count_params():
    spec = importlib.util.spec_from_file_location(
        "count_params", REPO_ROOT / "tools/count_params.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


count_params = _load_count_params()
MODEL_YAMLS = [p for p in ALL_YAMLS if count_params.is_model_config(p)]
# The original's configs have the paper's sizes; configs/demo/ holds our small models.
DEMO_ROOT = CONFIG_ROOT / "demo"
PAPER_YAMLS = [p for p in MODEL_YAMLS if DEMO_ROOT not in p.parents]
DEMO_YAMLS = [p for p in MODEL_YAMLS if DEMO_ROOT in p.parents]


def _build_on_meta(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        return build_model(cfg)


def _paper_size(path):
    matches = [key for key in PAPER_PARAMS_M if f"_{key}_" in f"_{path.stem}_"]
    assert len(matches) == 1, f"cannot tell the backbone of {path.name}: {matches}"
    return PAPER_PARAMS_M[matches[0]]


def test_only_base_files_are_not_model_configs():
    assert len(ALL_YAMLS) > 40
    base_files = {p for p in ALL_YAMLS if p.name.startswith("Base-")}
    assert set(ALL_YAMLS) - set(MODEL_YAMLS) == base_files


@pytest.mark.parametrize("path", DEMO_YAMLS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_demo_config_builds_small(path):
    counts = count_params.count_parameters(path)
    assert 1e6 < counts["total"] < 10e6, (path.name, counts)


@pytest.mark.parametrize("path", PAPER_YAMLS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_config_builds_with_paper_parameter_count(path):
    counts = count_params.count_parameters(path)
    expected = _paper_size(path)
    assert abs(counts["total"] / 1e6 - expected) < 1.0, (path.name, counts)
    assert counts["total"] == counts["backbone"] + counts["sem_seg_head"]


PIXEL_DECODER = "sem_seg_head.pixel_decoder."
PREDICTOR = "sem_seg_head.predictor."


def test_r50_coco_panoptic_checkpoint_names_and_shapes():
    state = _build_on_meta(R50_COCO_PANOPTIC).state_dict()
    expected_shapes = {
        "backbone.stem.conv1.weight": (64, 3, 7, 7),
        "backbone.res2.0.conv1.weight": (64, 64, 1, 1),
        "backbone.res2.0.conv1.norm.running_mean": (64,),
        "backbone.res5.2.conv3.norm.bias": (2048,),
        PIXEL_DECODER + "transformer.encoder.layers.0.self_attn.sampling_offsets.weight": (
            192,
            256,
        ),
        PIXEL_DECODER + "transformer.encoder.layers.5.linear2.weight": (256, 1024),
        PIXEL_DECODER + "transformer.level_embed": (3, 256),
        PIXEL_DECODER + "mask_features.weight": (256, 256, 1, 1),
        "sem_seg_head.predictor.query_feat.weight": (100, 256),
        "sem_seg_head.predictor.query_embed.weight": (100, 256),
        "sem_seg_head.predictor.level_embed.weight": (3, 256),
        "sem_seg_head.predictor.class_embed.weight": (134, 256),
        "sem_seg_head.predictor.mask_embed.layers.0.weight": (256, 256),
        PREDICTOR + "transformer_cross_attention_layers.8.multihead_attn.in_proj_weight": (
            768,
            256,
        ),
        "criterion.empty_weight": (134,),
    }
    for name, shape in expected_shapes.items():
        assert name in state, name
        assert tuple(state[name].shape) == shape, name
    assert "sem_seg_head.predictor.transformer_self_attention_layers.9.norm.weight" not in state
    assert not any(k.startswith("pixel_mean") or k.startswith("pixel_std") for k in state)


def test_swin_checkpoint_names():
    state = _build_on_meta(SWIN_T_COCO_PANOPTIC).state_dict()
    assert tuple(state["backbone.layers.0.blocks.0.attn.relative_position_bias_table"].shape) == (
        169,
        3,
    )
    assert "backbone.patch_embed.proj.weight" in state
    assert "sem_seg_head.predictor.query_feat.weight" in state


def test_count_params_cli(capsys):
    assert count_params.main([str(R50_COCO_PANOPTIC)]) == 0
    out = capsys.readouterr().out
    assert "maskformer2_R50_bs16_50ep.yaml" in out and "43.98" in out
