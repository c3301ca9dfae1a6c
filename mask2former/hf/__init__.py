"""transformers-style API: config, models, image processor and checkpoint name mapping.

Works without the ``transformers`` package; files are compatible with it both ways.
"""

from mask2former.hf.configuration import Mask2FormerConfig, SwinBackboneConfig
from mask2former.hf.image_processing import BatchFeature, Mask2FormerImageProcessor
from mask2former.hf.modeling import (
    Mask2FormerForUniversalSegmentation,
    Mask2FormerModel,
    Mask2FormerPreTrainedModel,
)
from mask2former.hf.name_mapping import hf_to_original, original_to_hf
from mask2former.hf.outputs import (
    Mask2FormerForUniversalSegmentationOutput,
    Mask2FormerModelOutput,
)

__all__ = [
    "BatchFeature",
    "Mask2FormerConfig",
    "Mask2FormerForUniversalSegmentation",
    "Mask2FormerForUniversalSegmentationOutput",
    "Mask2FormerImageProcessor",
    "Mask2FormerModel",
    "Mask2FormerModelOutput",
    "Mask2FormerPreTrainedModel",
    "SwinBackboneConfig",
    "hf_to_original",
    "original_to_hf",
]
