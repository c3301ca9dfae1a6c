"""An "oracle" backbone and head for end-to-end Cityscapes evaluation: the model predicts what
its input image spells out, so a test decides the predictions when it writes the images.

Image encoding (:func:`encode_prediction`): red = blue = Cityscapes train id (0..18), green =
instance number (1, 2, ... for things, 0 for stuff). Red and blue agree so that RGB and BGR
inputs decode alike. With ``MODEL.PIXEL_MEAN`` 0 and ``MODEL.PIXEL_STD`` 1 the backbone hands
the raw pixels to the head, which makes one query per (train id, instance) segment: class
logit 0 for its class and -1000 for the others (probability exactly 1 in float32), mask logits
+1000 inside and -1000 outside. MaskFormer's own post-processing does the rest.

Importing this module registers ``build_cityscapes_oracle_backbone`` (``MODEL.BACKBONE.NAME``)
and ``CityscapesOracleHead`` (``MODEL.SEM_SEG_HEAD.NAME``); the tests import it in the
``tools/train_net.py`` process before the script runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mask2former.layers import ShapeSpec
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.registry import BACKBONE_REGISTRY, SEM_SEG_HEADS_REGISTRY

# Train ids of the 8 Cityscapes thing classes (person .. bicycle); an 8-class model (the
# instance-segmentation configs) numbers them 0..7 in this order.
THING_TRAIN_IDS = tuple(range(11, 19))
_LOGIT = 1000.0


def encode_prediction(train_ids: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(H, W) train ids and instance numbers -> (H, W, 3) uint8 image the oracle decodes."""
    return np.stack([train_ids, instances, train_ids], axis=-1).astype(np.uint8)


class _OracleBackbone(Backbone):
    """Returns the (normalised) input image as its only feature, ``"image"`` at stride 1."""

    def __init__(self) -> None:
        super().__init__()
        self._out_features = ["image"]
        self._out_feature_channels = {"image": 3}
        self._out_feature_strides = {"image": 1}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": x}


@BACKBONE_REGISTRY.register()
def build_cityscapes_oracle_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    return _OracleBackbone()


@SEM_SEG_HEADS_REGISTRY.register()
class CityscapesOracleHead(nn.Module):
    """Queries read from the image: see the module docstring.

    With 19 classes the classes are the train ids; with 8 they are the thing classes (stuff
    segments get no query), as in the Cityscapes instance-segmentation configs.
    """

    # Heads declare how many earlier predictions they return (the criterion is sized by it).
    num_aux_outputs = 0

    def __init__(self, cfg, input_shape: dict[str, ShapeSpec]) -> None:
        super().__init__()
        self.num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        if self.num_classes not in (8, 19):
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES must be 8 or 19, got {self.num_classes}"
            )

    def _segments(self, image: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """(class, (H, W) bool mask) per encoded segment of one (3, H, W) image."""
        codes = image[0].round().long() * 256 + image[1].round().long()
        segments = []
        for code in torch.unique(codes).tolist():
            train_id = code // 256
            if self.num_classes == 8:
                if train_id not in THING_TRAIN_IDS:
                    continue
                train_id = THING_TRAIN_IDS.index(train_id)
            segments.append((train_id, codes == code))
        return segments

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Returns pred_logits (B, Q, K + 1) and full-resolution pred_masks (B, Q, H, W), Q the
        most segments of an image; missing queries predict "no object" with empty masks."""
        images = features["image"]
        per_image = [self._segments(image) for image in images]
        num_queries = max(len(segments) for segments in per_image)
        logits = images.new_full((len(images), num_queries, self.num_classes + 1), -_LOGIT)
        logits[:, :, -1] = 0.0
        masks = images.new_full((len(images), num_queries, *images.shape[-2:]), -_LOGIT)
        for index, segments in enumerate(per_image):
            for query, (label, mask) in enumerate(segments):
                logits[index, query] = -_LOGIT
                logits[index, query, label] = 0.0
                masks[index, query][mask] = _LOGIT
        return {"pred_logits": logits, "pred_masks": masks}
