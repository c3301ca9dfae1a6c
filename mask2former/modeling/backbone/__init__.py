"""Backbones. Importing this package fills ``BACKBONE_REGISTRY``."""

from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.backbone.build import build_backbone
from mask2former.modeling.backbone.resnet import (
    ResNet,
    build_resnet,
    build_resnet_backbone,
    build_resnet_deeplab_backbone,
)
from mask2former.modeling.backbone.resnet_blocks import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    DeepLabStem,
)
from mask2former.modeling.backbone.swin import D2SwinTransformer

__all__ = [
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "D2SwinTransformer",
    "DeepLabStem",
    "ResNet",
    "build_backbone",
    "build_resnet",
    "build_resnet_backbone",
    "build_resnet_deeplab_backbone",
]
