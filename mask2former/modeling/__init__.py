"""Model core. Importing this package fills every model registry (explicit imports below)."""

from mask2former.modeling import backbone, heads, pixel_decoder, transformer_decoder
from mask2former.modeling.backbone import Backbone, build_backbone
from mask2former.modeling.build import build_model
from mask2former.modeling.criterion import SetCriterion
from mask2former.modeling.heads import MaskFormerHead, build_sem_seg_head
from mask2former.modeling.matcher import HungarianMatcher
from mask2former.modeling.meta_arch import MaskFormer
from mask2former.modeling.pixel_decoder import (
    BasePixelDecoder,
    MSDeformAttnPixelDecoder,
    build_pixel_decoder,
)
from mask2former.modeling.registry import (
    BACKBONE_REGISTRY,
    META_ARCH_REGISTRY,
    PIXEL_DECODER_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    TRANSFORMER_DECODER_REGISTRY,
)
from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "META_ARCH_REGISTRY",
    "PIXEL_DECODER_REGISTRY",
    "SEM_SEG_HEADS_REGISTRY",
    "TRANSFORMER_DECODER_REGISTRY",
    "Backbone",
    "BasePixelDecoder",
    "HungarianMatcher",
    "MSDeformAttnPixelDecoder",
    "MaskFormer",
    "MaskFormerHead",
    "MultiScaleMaskedTransformerDecoder",
    "SetCriterion",
    "backbone",
    "build_backbone",
    "build_model",
    "build_pixel_decoder",
    "build_sem_seg_head",
    "build_transformer_decoder",
    "heads",
    "pixel_decoder",
    "transformer_decoder",
]
