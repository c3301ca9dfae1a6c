"""Deployment: export the network (ONNX, torch.export) and run exported files.

``export_model`` writes ``model.onnx`` / ``model.pt2`` plus ``model.json`` (sizes and
post-processing settings); ``ExportedPredictor`` runs such a file with onnxruntime, OpenVINO
or torch.export and returns the same dicts as ``MaskFormer`` in eval mode.
"""

from mask2former.export.api import default_size, export_model
from mask2former.export.metadata import read_metadata
from mask2former.export.network import ExportableNetwork
from mask2former.export.predictor import ExportedPredictor

__all__ = [
    "ExportableNetwork",
    "ExportedPredictor",
    "default_size",
    "export_model",
    "read_metadata",
]
