"""Tiny Mask2Former configurations shared by the transformers-API tests."""

from __future__ import annotations

import copy
from typing import Any

TINY_SWIN = {
    "model_type": "swin",
    "embed_dim": 16,
    "depths": [1, 1, 2, 1],
    "num_heads": [1, 1, 2, 2],
    "window_size": 3,
    "drop_path_rate": 0.0,
    "out_features": ["stage1", "stage2", "stage3", "stage4"],
}
TINY_MASK2FORMER = {
    "feature_size": 32,
    "mask_feature_size": 32,
    "hidden_dim": 32,
    "encoder_feedforward_dim": 64,
    "dim_feedforward": 64,
    "encoder_layers": 2,
    "decoder_layers": 4,
    "num_attention_heads": 2,
    "num_queries": 6,
    "train_num_points": 256,
}


def tiny_config_dict(num_labels: int = 4, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments accepted by both transformers' and our ``Mask2FormerConfig``.

    The window (3) is smaller than every stage's resolution for inputs >= 96 pixels:
    transformers' Swin shrinks windows (and drops the shift) on smaller feature maps, which
    the original Swin does not.
    """
    values = copy.deepcopy(TINY_MASK2FORMER)
    values["backbone_config"] = copy.deepcopy(TINY_SWIN)
    values["id2label"] = {i: f"class_{i}" for i in range(num_labels)}
    values["label2id"] = {f"class_{i}": i for i in range(num_labels)}
    values.update(overrides)
    return values
