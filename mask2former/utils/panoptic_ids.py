"""COCO panoptic PNG encoding of segment ids (``id = R + 256 G + 256^2 B``), in one place for
the dataset readers, the demo dataset, prediction writers and evaluators."""

from __future__ import annotations

import numpy as np

__all__ = ["id2rgb", "rgb2id"]


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Panoptic PNG colours -> segment ids.

    Args:
        color: (..., 3) array (uint8 from a PNG; any integer type is accepted).

    Returns:
        (...) int64 ids ``R + 256 G + 256^2 B``.
    """
    color = np.asarray(color).astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids -> panoptic PNG colours, the inverse of :func:`rgb2id` for ids < 2^24.

    Args:
        ids: (...) integer ids.

    Returns:
        (..., 3) uint8 colours.
    """
    ids = np.asarray(ids).astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
