"""Shared layers: the MSDeformAttn op and module, shapes, norms, conv wrapper, weight init."""

from fvcore.nn.weight_init import c2_msra_fill, c2_xavier_fill

from mask2former.layers.batch_norm import FrozenBatchNorm2d, get_norm
from mask2former.layers.drop_path import DropPath, drop_path
from mask2former.layers.ms_deform_attn import ms_deform_attn
from mask2former.layers.ms_deform_attn_module import MSDeformAttn
from mask2former.layers.position_encoding import PositionEmbeddingSine
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.layers.wrappers import Conv2d

__all__ = [
    "Conv2d",
    "DropPath",
    "FrozenBatchNorm2d",
    "MSDeformAttn",
    "PositionEmbeddingSine",
    "ShapeSpec",
    "c2_msra_fill",
    "c2_xavier_fill",
    "drop_path",
    "get_norm",
    "ms_deform_attn",
]
