"""Checkpoint saving / loading, including detectron2 and Caffe2 model-zoo files."""

from mask2former.checkpoint.c2_model_loading import (
    align_and_update_state_dicts,
    convert_c2_name,
)
from mask2former.checkpoint.detection_checkpoint import (
    DetectionCheckpointer,
    IncompatibleKeys,
    resolve_weights_path,
)

__all__ = [
    "DetectionCheckpointer",
    "IncompatibleKeys",
    "align_and_update_state_dicts",
    "convert_c2_name",
    "resolve_weights_path",
]
