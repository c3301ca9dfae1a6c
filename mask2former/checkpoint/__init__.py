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
from mask2former.checkpoint.file_io import TRUST_ENV_VAR, UntrustedCheckpointError

__all__ = [
    "DetectionCheckpointer",
    "IncompatibleKeys",
    "TRUST_ENV_VAR",
    "UntrustedCheckpointError",
    "align_and_update_state_dicts",
    "convert_c2_name",
    "resolve_weights_path",
]
