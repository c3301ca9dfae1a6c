"""Contract tests for BACKBONE_REGISTRY / build_backbone: every registered backbone reports
output names, channels and strides that match its real outputs."""

import math

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.layers import ShapeSpec
from mask2former.modeling.backbone import Backbone, build_backbone
from mask2former.modeling.registry import BACKBONE_REGISTRY

TINY_RESNET = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 8,
    "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
]  # fmt: skip
TINY_SWIN = [
    "MODEL.BACKBONE.NAME", "D2SwinTransformer",
    "MODEL.SWIN.EMBED_DIM", 16,
    "MODEL.SWIN.DEPTHS", [2, 2, 2, 2],
    "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4],
]  # fmt: skip

CONTRACT_CONFIGS = {
    "r50": TINY_RESNET,
    "r50_dilated_res5": TINY_RESNET + ["MODEL.RESNETS.RES5_DILATION", 2],
    "r18": [
        "MODEL.RESNETS.DEPTH", 18,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
        "MODEL.RESNETS.OUT_FEATURES", ["stem", "res3", "res5"],
    ],
    "r50_deeplab": TINY_RESNET + [
        "MODEL.BACKBONE.NAME", "build_resnet_deeplab_backbone",
        "MODEL.RESNETS.STEM_TYPE", "deeplab",
        "MODEL.RESNETS.RES4_DILATION", 2,
        "MODEL.RESNETS.RES5_DILATION", 4,
    ],
    "swin_w7": TINY_SWIN,
    "swin_w12_res3_res5": TINY_SWIN + [
        "MODEL.SWIN.WINDOW_SIZE", 12,
        "MODEL.SWIN.PRETRAIN_IMG_SIZE", 384,
        "MODEL.SWIN.OUT_FEATURES", ["res3", "res5"],
    ],
}  # fmt: skip


def _cfg(opts):
    cfg = get_cfg()
    cfg.merge_from_list(list(opts))
    return cfg


def test_registered_names():
    names = {name for name, _ in BACKBONE_REGISTRY}
    assert {"build_resnet_backbone", "build_resnet_deeplab_backbone", "D2SwinTransformer"} <= names


def test_unknown_name_names_the_config_key():
    with pytest.raises(KeyError, match="MODEL.BACKBONE.NAME.*build_resnet_backbone"):
        build_backbone(_cfg(["MODEL.BACKBONE.NAME", "NoSuchBackbone"]))


def test_input_channels_default_to_pixel_mean_length():
    cfg = _cfg(TINY_SWIN + ["MODEL.PIXEL_MEAN", [0.0] * 4, "MODEL.PIXEL_STD", [1.0] * 4])
    backbone = build_backbone(cfg)
    assert backbone.patch_embed.proj.in_channels == 4
    explicit = build_backbone(cfg, ShapeSpec(channels=1))
    assert explicit.patch_embed.proj.in_channels == 1
    cfg = _cfg(TINY_RESNET + ["MODEL.PIXEL_MEAN", [0.0], "MODEL.PIXEL_STD", [1.0]])
    assert build_backbone(cfg).stem.conv1.in_channels == 1


@pytest.mark.parametrize("name", sorted(CONTRACT_CONFIGS))
@pytest.mark.parametrize("size", [(64, 64), (45, 37)])
def test_declared_shapes_match_outputs(name, size):
    cfg = _cfg(CONTRACT_CONFIGS[name])
    torch.manual_seed(0)
    backbone = build_backbone(cfg).eval()
    assert isinstance(backbone, Backbone)
    shapes = backbone.output_shape()
    with torch.no_grad():
        outputs = backbone(torch.randn(1, 3, *size))
    assert list(outputs) == list(shapes)
    for feature, spec in shapes.items():
        out = outputs[feature]
        assert out.shape[:2] == (1, spec.channels), feature
        # Every stride-2 step in these backbones rounds up (padding 1 / right-bottom pad).
        assert out.shape[-2:] == tuple(math.ceil(s / spec.stride) for s in size), feature
        assert torch.isfinite(out).all()
