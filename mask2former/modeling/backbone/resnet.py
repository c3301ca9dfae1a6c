"""ResNet backbones with detectron2's module layout, parameter names and arithmetic.

Two registered builders read the config:

* ``build_resnet_backbone`` — detectron2's builder, the one every original Mask2Former
  ResNet config names. Like detectron2 it always uses the 7x7 stem and ignores
  ``MODEL.RESNETS.STEM_TYPE``, ``RES4_DILATION`` and ``RES5_MULTI_GRID`` (the original
  YAML files mark those keys "not used").
* ``build_resnet_deeplab_backbone`` — detectron2's DeepLab-project builder: honours
  ``STEM_TYPE`` ("basic" or "deeplab", the three-3x3-conv stem of ``R-103.pkl``),
  ``RES4_DILATION``, ``RES5_DILATION`` and ``RES5_MULTI_GRID``.

Both call :func:`build_resnet`, which takes plain keyword arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.backbone.resnet_blocks import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    CNNBlockBase,
    DeepLabStem,
)
from mask2former.modeling.registry import BACKBONE_REGISTRY

BLOCKS_PER_STAGE: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
_STAGE_INDEX = {"stem": 1, "res2": 2, "res3": 3, "res4": 4, "res5": 5}


class ResNet(Backbone):
    """A stem followed by stages registered as ``res2``, ``res3``, ... (detectron2 names).

    Args:
        stem: module with ``in_channels``, ``out_channels`` and ``stride`` attributes.
        stages: blocks of each stage, ``res2`` first. Stages after the last requested
            output are dropped.
        out_features: names to return, among "stem" and "res2".."res5" (default: last stage).
        freeze_at: 1 freezes the stem, 2 also ``res2``, and so on (see :meth:`freeze`).
    """

    def __init__(
        self,
        stem: CNNBlockBase,
        stages: Sequence[Sequence[CNNBlockBase]],
        out_features: Sequence[str] | None = None,
        freeze_at: int = 0,
    ) -> None:
        super().__init__()
        self.stem = stem
        stride = stem.stride
        self._out_feature_strides = {"stem": stride}
        self._out_feature_channels = {"stem": stem.out_channels}
        if out_features is not None:
            _check_out_features(out_features, len(stages))
            stages = stages[: max(_STAGE_INDEX[name] for name in out_features) - 1]
        self.stage_names: tuple[str, ...] = tuple(f"res{i + 2}" for i in range(len(stages)))
        for name, blocks in zip(self.stage_names, stages):
            if not blocks:
                raise ValueError(f"stage {name} of ResNet has no blocks")
            self.add_module(name, nn.Sequential(*blocks))
            for block in blocks:
                stride *= block.stride
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        if out_features is None:
            out_features = [self.stage_names[-1] if self.stage_names else "stem"]
        self._out_features = list(out_features)
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x (N, C_in, H, W). Returns: name -> (N, C_name, H / s_name, W / s_name),
        channels-last in eval mode on CPU."""
        if x.dim() != 4 or x.shape[1] != self.stem.in_channels:
            raise ValueError(
                f"ResNet expects an input of shape (N, {self.stem.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        outputs = {}
        if not self.training and x.device.type == "cpu":
            # oneDNN convolutions run faster in NHWC (measured: bench/network.py); the features
            # come out channels-last (same shapes and values; the heads are layout-agnostic).
            # Training keeps the input's layout so its numerics are unchanged.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> ResNet:
        """Freeze the stem (``freeze_at >= 1``) and stages ``res2``..``res{freeze_at}``.

        Frozen parameters stop requiring gradients and BatchNorm layers become FrozenBN.
        """
        if freeze_at >= 1:
            self.stem.freeze()
        for index, name in enumerate(self.stage_names, start=2):
            if freeze_at >= index:
                for block in getattr(self, name).children():
                    block.freeze()
        return self

    @staticmethod
    def make_stage(
        block_class: type[CNNBlockBase],
        num_blocks: int,
        *,
        in_channels: int,
        out_channels: int,
        **kwargs,
    ) -> list[CNNBlockBase]:
        """Create ``num_blocks`` blocks; a ``<arg>_per_block`` kwarg gives one value per block."""
        blocks = []
        for i in range(num_blocks):
            block_kwargs = {}
            for key, value in kwargs.items():
                if key.endswith("_per_block"):
                    if len(value) != num_blocks:
                        raise ValueError(
                            f"{key} has {len(value)} values, expected num_blocks={num_blocks}"
                        )
                    block_kwargs[key[: -len("_per_block")]] = value[i]
                else:
                    block_kwargs[key] = value
            blocks.append(
                block_class(in_channels=in_channels, out_channels=out_channels, **block_kwargs)
            )
            in_channels = out_channels
        return blocks


def _check_out_features(out_features: Sequence[str], num_stages: int) -> None:
    valid = ["stem"] + [f"res{i + 2}" for i in range(num_stages)]
    unknown = [name for name in out_features if name not in valid]
    if unknown or not out_features:
        raise ValueError(f"ResNet out_features={list(out_features)}: expected names in {valid}")


def build_resnet(
    *,
    depth: int,
    in_channels: int = 3,
    norm: str = "FrozenBN",
    stem_type: str = "basic",
    stem_out_channels: int = 64,
    res2_out_channels: int = 256,
    num_groups: int = 1,
    width_per_group: int = 64,
    stride_in_1x1: bool = True,
    res4_dilation: int = 1,
    res5_dilation: int = 1,
    res5_multi_grid: Sequence[int] | None = None,
    out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
    freeze_at: int = 0,
) -> ResNet:
    """Build a ResNet from plain arguments (the config-free entry point).

    Args:
        depth: 18 or 34 (basic blocks) or 50, 101, 152 (bottleneck blocks).
        stem_type: "basic" (7x7 conv) or "deeplab" (three 3x3 convs).
        res2_out_channels: output channels of res2 (later stages double it); 64 for the
            standard (pretrained) R18/R34.
        num_groups, width_per_group: bottleneck width of res2 is their product (ResNeXt > 1).
        res4_dilation: 1 or 2; 2 requires ``res5_dilation`` 4.
        res5_dilation: 1, 2 or 4. A dilated stage keeps its input resolution (stride 1).
        res5_multi_grid: per-block multipliers of ``res5_dilation`` (None: all 1).
        freeze_at: see :meth:`ResNet.freeze`.
    """
    if depth not in BLOCKS_PER_STAGE:
        raise ValueError(f"ResNet depth={depth}: expected one of {sorted(BLOCKS_PER_STAGE)}")
    if res4_dilation not in (1, 2) or res5_dilation not in (1, 2, 4):
        raise ValueError(
            f"ResNet dilations res4={res4_dilation}, res5={res5_dilation}: expected res4 in "
            "{1, 2} and res5 in {1, 2, 4}"
        )
    if res4_dilation == 2 and res5_dilation != 4:
        raise ValueError(f"res4_dilation=2 requires res5_dilation=4, got {res5_dilation}")
    blocks_per_stage = BLOCKS_PER_STAGE[depth]
    multi_grid = [1] * blocks_per_stage[3] if res5_multi_grid is None else list(res5_multi_grid)
    if depth < 50:
        # Unlike detectron2, any width is accepted (e.g. 32 for small from-scratch models);
        # pretrained R18/R34 weights only exist for 64.
        if num_groups != 1:
            raise ValueError(f"ResNet-{depth} (basic blocks) needs num_groups=1, got {num_groups}")
        if res4_dilation != 1 or res5_dilation != 1 or any(m != 1 for m in multi_grid):
            raise ValueError(f"ResNet-{depth} (basic blocks) does not support dilation")
    elif len(multi_grid) != blocks_per_stage[3]:
        raise ValueError(
            f"res5_multi_grid={multi_grid} needs {blocks_per_stage[3]} values for depth {depth}"
        )

    if stem_type == "basic":
        stem = BasicStem(in_channels, stem_out_channels, norm=norm)
    elif stem_type == "deeplab":
        stem = DeepLabStem(in_channels, stem_out_channels, norm=norm)
    else:
        raise ValueError(f"ResNet stem_type={stem_type!r}: expected 'basic' or 'deeplab'")

    _check_out_features(out_features, num_stages=4)
    num_stages = max(_STAGE_INDEX[name] for name in out_features) - 1
    stage_in_channels, stage_out_channels = stem_out_channels, res2_out_channels
    bottleneck_channels = num_groups * width_per_group
    stages = []
    for idx in range(num_stages):
        dilation = {2: res4_dilation, 3: res5_dilation}.get(idx, 1)
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        num_blocks = blocks_per_stage[idx]
        stage_kwargs = {
            "in_channels": stage_in_channels,
            "out_channels": stage_out_channels,
            "stride_per_block": [first_stride] + [1] * (num_blocks - 1),
            "norm": norm,
        }
        if depth < 50:
            block_class: type[CNNBlockBase] = BasicBlock
        else:
            block_class = BottleneckBlock
            stage_kwargs.update(
                bottleneck_channels=bottleneck_channels,
                num_groups=num_groups,
                stride_in_1x1=stride_in_1x1,
            )
            if idx == 3:
                stage_kwargs["dilation_per_block"] = [dilation * m for m in multi_grid]
            else:
                stage_kwargs["dilation"] = dilation
        stages.append(ResNet.make_stage(block_class, num_blocks, **stage_kwargs))
        stage_in_channels = stage_out_channels
        stage_out_channels *= 2
        bottleneck_channels *= 2
    return ResNet(stem, stages, out_features=out_features, freeze_at=freeze_at)


def _resnet_kwargs_from_cfg(cfg, input_shape: ShapeSpec) -> dict:
    """The keyword arguments of :func:`build_resnet` that both builders read alike."""
    resnets = cfg.MODEL.RESNETS
    if any(resnets.DEFORM_ON_PER_STAGE):
        raise ValueError(
            f"MODEL.RESNETS.DEFORM_ON_PER_STAGE={list(resnets.DEFORM_ON_PER_STAGE)}: deformable "
            "convolutions are not implemented; expected all False"
        )
    return {
        "depth": resnets.DEPTH,
        "in_channels": input_shape.channels,
        "norm": resnets.NORM,
        "stem_out_channels": resnets.STEM_OUT_CHANNELS,
        "res2_out_channels": resnets.RES2_OUT_CHANNELS,
        "num_groups": resnets.NUM_GROUPS,
        "width_per_group": resnets.WIDTH_PER_GROUP,
        "stride_in_1x1": resnets.STRIDE_IN_1X1,
        "res5_dilation": resnets.RES5_DILATION,
        "out_features": list(resnets.OUT_FEATURES),
        "freeze_at": cfg.MODEL.BACKBONE.FREEZE_AT,
    }


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """detectron2's ResNet builder: 7x7 stem; ``RES5_DILATION`` in {1, 2}.

    ``MODEL.RESNETS.STEM_TYPE``, ``RES4_DILATION`` and ``RES5_MULTI_GRID`` are not read
    (use ``build_resnet_deeplab_backbone`` for those).
    """
    kwargs = _resnet_kwargs_from_cfg(cfg, input_shape)
    if kwargs["res5_dilation"] not in (1, 2):
        raise ValueError(
            f"MODEL.RESNETS.RES5_DILATION={kwargs['res5_dilation']}: expected 1 or 2 for "
            "build_resnet_backbone"
        )
    return build_resnet(stem_type="basic", **kwargs)


@BACKBONE_REGISTRY.register()
def build_resnet_deeplab_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """detectron2's DeepLab ResNet builder: reads ``STEM_TYPE``, ``RES4_DILATION`` and
    ``RES5_MULTI_GRID`` as well."""
    resnets = cfg.MODEL.RESNETS
    return build_resnet(
        stem_type=resnets.STEM_TYPE,
        res4_dilation=resnets.RES4_DILATION,
        res5_multi_grid=list(resnets.RES5_MULTI_GRID),
        **_resnet_kwargs_from_cfg(cfg, input_shape),
    )
