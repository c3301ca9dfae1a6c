"""ResNet backbone: detectron2 parameter names, counts, strides, dilation, stems, freezing."""

import pytest
import torch
from torch import nn

from mask2former.config import get_cfg
from mask2former.layers import Conv2d, FrozenBatchNorm2d
from mask2former.modeling.backbone import BasicStem, DeepLabStem, build_backbone, build_resnet

ALL_STAGES = ["res2", "res3", "res4", "res5"]
TINY = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 8,
    "MODEL.RESNETS.OUT_FEATURES", ALL_STAGES,
]  # fmt: skip
# GroupNorm uses 32 groups: every width a multiple of 32.
TINY_GN = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 32,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 32,
    "MODEL.RESNETS.OUT_FEATURES", ALL_STAGES,
    "MODEL.RESNETS.NORM", "GN",
]  # fmt: skip
# The backbone part of the original configs/coco/panoptic-segmentation/*R50*.yaml.
ORIGINAL_R50 = [
    "MODEL.BACKBONE.FREEZE_AT", 0,
    "MODEL.RESNETS.DEPTH", 50,
    "MODEL.RESNETS.STEM_TYPE", "basic",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 64,
    "MODEL.RESNETS.STRIDE_IN_1X1", False,
    "MODEL.RESNETS.OUT_FEATURES", ALL_STAGES,
    "MODEL.RESNETS.RES5_MULTI_GRID", [1, 1, 1],
]  # fmt: skip


def _build(opts, meta=False):
    cfg = get_cfg()
    cfg.merge_from_list(list(opts))
    if meta:
        with torch.device("meta"):
            return build_backbone(cfg)
    return build_backbone(cfg)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def test_r50_state_dict_names_match_detectron2():
    model = _build(ORIGINAL_R50, meta=True)
    keys = list(model.state_dict())
    convs = [name for name, m in model.named_modules() if isinstance(m, Conv2d)]
    assert len(convs) == 53  # stem + 16 blocks x 3 + 4 projection shortcuts
    assert len(keys) == 53 * 5  # weight + FrozenBN weight, bias, running_mean, running_var
    assert keys[:6] == [
        "stem.conv1.weight",
        "stem.conv1.norm.weight",
        "stem.conv1.norm.bias",
        "stem.conv1.norm.running_mean",
        "stem.conv1.norm.running_var",
        "res2.0.shortcut.weight",
    ]
    expected = [
        "res2.0.conv1.weight",
        "res2.0.conv1.norm.running_mean",
        "res2.0.conv2.weight",
        "res2.0.conv3.norm.bias",
        "res2.0.shortcut.norm.running_var",
        "res2.2.conv3.weight",
        "res3.0.shortcut.weight",
        "res3.3.conv2.norm.weight",
        "res4.0.shortcut.norm.running_mean",
        "res4.5.conv1.weight",
        "res4.5.conv3.norm.running_var",
        "res5.0.shortcut.weight",
        "res5.2.conv2.weight",
        "res5.2.conv3.norm.running_var",
    ]
    assert set(expected) <= set(keys)
    for absent in ("res2.1.shortcut.weight", "res4.6.conv1.weight", "res5.3.conv1.weight"):
        assert absent not in keys
    assert not any("num_batches_tracked" in key or "fc" in key for key in keys)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["stem.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["res2.0.conv2.weight"] == (64, 64, 3, 3)
    assert shapes["res5.0.shortcut.weight"] == (2048, 1024, 1, 1)
    assert shapes["res5.2.conv3.norm.running_var"] == (2048,)


@pytest.mark.parametrize(
    ("depth", "num_params"),
    # torchvision's resnet{18,34,50,101,152} without the fc layer.
    [(18, 11_176_512), (34, 21_284_672), (50, 23_508_032), (101, 42_500_160), (152, 58_143_808)],
)
def test_parameter_count_matches_torchvision(depth, num_params):
    opts = ORIGINAL_R50 + ["MODEL.RESNETS.DEPTH", depth, "MODEL.RESNETS.NORM", "BN"]
    if depth < 50:
        opts += ["MODEL.RESNETS.RES2_OUT_CHANNELS", 64]
    model = _build(opts, meta=True)
    assert _num_params(model) == num_params


def test_r50_frozen_bn_parameter_count():
    # FrozenBN keeps its affine terms as buffers: 23.5M minus the 53k BN parameters.
    assert _num_params(_build(ORIGINAL_R50, meta=True)) == 23_454_912


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_stride_placement(stride_in_1x1):
    model = _build(TINY + ["MODEL.RESNETS.STRIDE_IN_1X1", stride_in_1x1])
    block = model.res3[0]
    assert block.conv1.stride == ((2, 2) if stride_in_1x1 else (1, 1))
    assert block.conv2.stride == ((1, 1) if stride_in_1x1 else (2, 2))
    assert block.shortcut.stride == (2, 2)
    assert model.res3[1].conv1.stride == model.res3[1].conv2.stride == (1, 1)
    assert model.res2[0].conv1.stride == model.res2[0].conv2.stride == (1, 1)


def test_res5_dilation_keeps_resolution():
    model = _build(TINY + ["MODEL.RESNETS.RES5_DILATION", 2])
    assert model.output_shape()["res5"].stride == 16
    for block in model.res5:
        assert block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2)
        assert block.conv2.stride == (1, 1)
    assert model.res5[0].shortcut.stride == (1, 1)


def test_basic_builder_ignores_deeplab_keys():
    # The original YAML files mark STEM_TYPE / RES5_MULTI_GRID "not used"; get_cfg's
    # defaults are the DeepLab ones, which detectron2's build_resnet_backbone never reads.
    cfg = get_cfg()
    assert cfg.MODEL.RESNETS.STEM_TYPE == "deeplab"
    model = _build(TINY + ["MODEL.RESNETS.RES5_MULTI_GRID", [1, 2, 4]])
    assert isinstance(model.stem, BasicStem)
    assert model.stem.conv1.kernel_size == (7, 7)
    assert [block.conv2.dilation for block in model.res5] == [(1, 1)] * 3


@pytest.mark.parametrize(("res5_dilation", "expected"), [(1, [1, 2, 4]), (2, [2, 4, 8])])
def test_deeplab_builder_multi_grid_and_stem(res5_dilation, expected):
    model = _build(
        TINY
        + [
            "MODEL.BACKBONE.NAME",
            "build_resnet_deeplab_backbone",
            "MODEL.RESNETS.RES5_DILATION",
            res5_dilation,
            "MODEL.RESNETS.STEM_OUT_CHANNELS",
            32,
        ]  # fmt: skip
    )
    assert isinstance(model.stem, DeepLabStem)
    stem = model.stem
    assert [c.out_channels for c in (stem.conv1, stem.conv2, stem.conv3)] == [16, 16, 32]
    assert [c.stride for c in (stem.conv1, stem.conv2, stem.conv3)] == [(2, 2), (1, 1), (1, 1)]
    assert {"stem.conv1.weight", "stem.conv3.norm.running_var"} <= set(model.state_dict())
    assert [block.conv2.dilation[0] for block in model.res5] == expected
    assert [block.conv2.padding[0] for block in model.res5] == expected
    assert model.output_shape()["res5"].stride == (32 if res5_dilation == 1 else 16)


def test_stem_max_pool_geometry():
    stem = BasicStem(3, 8, norm="")
    x = torch.randn(1, 3, 65, 33)
    # 7x7/2 pad 3 conv, then 3x3/2 pad 1 max-pool: both round up.
    assert stem(x).shape == (1, 8, 17, 9)
    with torch.no_grad():
        conv = nn.functional.relu(stem.conv1(x))
        padded = nn.functional.pad(conv, (1, 1, 1, 1), value=float("-inf"))
    assert torch.equal(stem(x)[0, :, 0, 0], padded[0, :, :3, :3].amax(dim=(1, 2)))


@pytest.mark.parametrize(
    ("norm", "norm_type"),
    [
        ("FrozenBN", FrozenBatchNorm2d),
        ("BN", nn.BatchNorm2d),
        ("SyncBN", nn.SyncBatchNorm),
        ("GN", nn.GroupNorm),
    ],
)
def test_norm_by_config(norm, norm_type):
    base = TINY_GN if norm == "GN" else TINY
    model = _build(base + ["MODEL.RESNETS.NORM", norm, "MODEL.BACKBONE.FREEZE_AT", 0])
    norms = [m.norm for m in model.modules() if isinstance(m, Conv2d)]
    assert norms and all(type(n) is norm_type for n in norms)


def test_freeze_at_two_freezes_stem_and_res2():
    model = _build(TINY + ["MODEL.RESNETS.NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", 2])
    for name, param in model.named_parameters():
        assert param.requires_grad == (name.split(".")[0] in ("res3", "res4", "res5")), name
    assert isinstance(model.stem.conv1.norm, FrozenBatchNorm2d)
    assert isinstance(model.res2[2].conv3.norm, FrozenBatchNorm2d)
    assert isinstance(model.res3[0].conv1.norm, nn.BatchNorm2d)
    # Gradients reach the trainable stages through the frozen ones.
    model.train()
    sum(out.sum() for out in model(torch.randn(2, 3, 32, 32)).values()).backward()
    assert model.res3[0].conv1.weight.grad is not None
    assert model.stem.conv1.weight.grad is None


def test_freeze_at_zero_trains_everything():
    model = _build(TINY_GN + ["MODEL.BACKBONE.FREEZE_AT", 0])
    assert all(p.requires_grad for p in model.parameters())


def test_out_features_drop_unused_stages():
    model = _build(TINY + ["MODEL.RESNETS.OUT_FEATURES", ["res3"]])
    assert not hasattr(model, "res4") and not hasattr(model, "res5")
    assert list(model(torch.randn(1, 3, 32, 32))) == ["res3"]


def test_msra_init():
    model = build_resnet(depth=50, norm="FrozenBN")
    weight = model.res5[0].conv2.weight  # 512 x 512 x 3 x 3, fan_out = 512 * 9
    assert weight.std().item() == pytest.approx((2.0 / (512 * 9)) ** 0.5, rel=0.02)


def test_bad_arguments_raise_value_errors():
    model = _build(TINY)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="depth=42"):
        build_resnet(depth=42)
    with pytest.raises(ValueError, match="num_groups=1"):
        build_resnet(depth=18, num_groups=2)
    narrow = build_resnet(depth=18, res2_out_channels=32, stem_out_channels=32)
    assert narrow.output_shape()["res5"].channels == 256
    with pytest.raises(ValueError, match="stem_type"):
        build_resnet(depth=50, stem_type="fancy")
    with pytest.raises(ValueError, match="out_features"):
        build_resnet(depth=50, out_features=["res6"])
    with pytest.raises(ValueError, match="DEFORM_ON_PER_STAGE"):
        _build(TINY + ["MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, True, False, False]])
    with pytest.raises(ValueError, match="RES5_DILATION=4"):
        _build(TINY + ["MODEL.RESNETS.RES5_DILATION", 4])
