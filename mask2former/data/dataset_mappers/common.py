"""Helpers shared by the training mappers: tensor conversion, padding, mask stacking."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mask2former.data import transforms as T
from mask2former.data.catalog import MetadataCatalog

__all__ = [
    "build_semantic_style_augmentations",
    "image_to_tensor",
    "masks_to_tensor",
    "pad_to_divisibility",
]


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) array -> (C, H, W) tensor of the same dtype."""
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


def pad_to_divisibility(tensor: torch.Tensor, size_divisibility: int, value: float) -> torch.Tensor:
    """Pad the last two dims (bottom/right) up to a multiple of ``size_divisibility``.

    The original mappers pad to exactly ``size_divisibility`` (their crops equal it); for such
    inputs this is the same, and larger inputs are padded instead of being cut.
    """
    if size_divisibility <= 0:
        return tensor
    h, w = tensor.shape[-2:]
    pad_h = (size_divisibility - h % size_divisibility) % size_divisibility
    pad_w = (size_divisibility - w % size_divisibility) % size_divisibility
    if pad_h == 0 and pad_w == 0:
        return tensor
    if tensor.dtype == torch.bool:
        padded = F.pad(tensor.to(torch.uint8), [0, pad_w, 0, pad_h], value=int(value))
        return padded.to(torch.bool).contiguous()
    return F.pad(tensor, [0, pad_w, 0, pad_h], value=value).contiguous()


def masks_to_tensor(masks: list[np.ndarray], height: int, width: int) -> torch.Tensor:
    """Stack (H, W) masks into an (N, H, W) bool tensor ((0, H, W) when empty)."""
    if not masks:
        return torch.zeros((0, height, width), dtype=torch.bool)
    return torch.stack([torch.from_numpy(np.ascontiguousarray(m)).to(torch.bool) for m in masks])


def build_semantic_style_augmentations(cfg, *, category_area_crop: bool) -> list:
    """ResizeShortestEdge -> [crop] -> [SSD colour] -> flip, as the MaskFormer mappers use.

    Args:
        cfg: config with INPUT.* and MODEL.SEM_SEG_HEAD.IGNORE_VALUE.
        category_area_crop: use the category-area-constrained crop (semantic / panoptic)
            instead of the plain random crop (instance).
    """
    augs: list = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if cfg.INPUT.CROP.ENABLED:
        if category_area_crop:
            augs.append(
                T.RandomCropCategoryAreaConstraint(
                    cfg.INPUT.CROP.TYPE,
                    cfg.INPUT.CROP.SIZE,
                    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
                )
            )
        else:
            augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    if cfg.INPUT.COLOR_AUG_SSD:
        augs.append(T.ColorAugSSDTransform(img_format=cfg.INPUT.FORMAT))
    augs.append(T.RandomFlip())
    return augs


def train_ignore_label(cfg) -> int:
    """``ignore_label`` of the first training dataset (DATASETS.TRAIN[0])."""
    if not cfg.DATASETS.TRAIN:
        raise ValueError("DATASETS.TRAIN is empty: the mapper needs a dataset's ignore_label")
    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    ignore_label = meta.get("ignore_label")
    if ignore_label is None:
        raise KeyError(
            f"Metadata of dataset {cfg.DATASETS.TRAIN[0]!r} has no 'ignore_label'; is it "
            "registered (register_builtin())?"
        )
    return ignore_label
