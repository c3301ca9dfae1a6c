"""Geometric augmentations used by the Mask2Former mappers (same policies as detectron2)."""

from __future__ import annotations

import sys

import numpy as np
from fvcore.transforms.transform import (
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from PIL import Image

from mask2former.data.transforms.augmentation import Augmentation
from mask2former.data.transforms.transform import CropTransform, ResizeTransform

__all__ = [
    "FixedSizeCrop",
    "RandomCrop",
    "RandomCropCategoryAreaConstraint",
    "RandomFlip",
    "ResizeScale",
    "ResizeShortestEdge",
]

_CROP_TYPES = ("relative_range", "relative", "absolute", "absolute_range")


class RandomFlip(Augmentation):
    """Flip horizontally (or vertically) with probability ``prob``."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        if horizontal == vertical:
            raise ValueError(
                f"RandomFlip needs exactly one of horizontal/vertical, got "
                f"horizontal={horizontal}, vertical={vertical}"
            )
        self.prob, self.horizontal, self.vertical = prob, horizontal, vertical

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if np.random.uniform(0.0, 1.0) < self.prob:
            return HFlipTransform(w) if self.horizontal else VFlipTransform(h)
        return NoOpTransform()


class ResizeShortestEdge(Augmentation):
    """Resize so the short side is a sampled length, capping the long side at ``max_size``.

    Args:
        short_edge_length: [min, max] for ``sample_style="range"``, candidates for "choice".
        max_size: maximum long side.
        sample_style: "range" or "choice".
        interp: PIL resampling filter for images.
    """

    def __init__(
        self,
        short_edge_length: int | list[int] | tuple[int, ...],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = Image.Resampling.BILINEAR,
    ):
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        short_edge_length = tuple(short_edge_length)
        if any(size < 0 for size in short_edge_length) or max_size <= 0:
            raise ValueError(
                f"ResizeShortestEdge: short_edge_length {short_edge_length} must be >= 0 (0: no "
                f"resize) and max_size {max_size} > 0 (INPUT.MIN_SIZE_TRAIN / MIN_SIZE_TEST, "
                "INPUT.MAX_SIZE_TRAIN / MAX_SIZE_TEST)"
            )
        if sample_style == "range" and len(short_edge_length) != 2:
            raise ValueError(
                f"short_edge_length needs two values (min, max) for sample_style='range', got "
                f"{short_edge_length} (INPUT.MIN_SIZE_TRAIN / INPUT.MIN_SIZE_TRAIN_SAMPLING)"
            )
        self.short_edge_length = short_edge_length
        self.max_size = max_size
        self.sample_style = sample_style
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()
        new_h, new_w = self.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    @staticmethod
    def get_output_shape(old_h: int, old_w: int, short_edge: int, max_size: int) -> tuple[int, int]:
        """(new_h, new_w) after scaling the short side to ``short_edge`` within ``max_size``."""
        size = short_edge * 1.0
        scale = size / min(old_h, old_w)
        new_h, new_w = (size, scale * old_w) if old_h < old_w else (scale * old_h, size)
        if max(new_h, new_w) > max_size:
            scale = max_size * 1.0 / max(new_h, new_w)
            new_h, new_w = new_h * scale, new_w * scale
        return int(new_h + 0.5), int(new_w + 0.5)


class ResizeScale(Augmentation):
    """LSJ resize: fit the image into ``target_size * U(min_scale, max_scale)``, keeping aspect."""

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.Resampling.BILINEAR,
    ):
        self.min_scale, self.max_scale = min_scale, max_scale
        self.target_height, self.target_width = target_height, target_width
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        scale = np.random.uniform(self.min_scale, self.max_scale)
        in_h, in_w = image.shape[:2]
        target = np.multiply((self.target_height, self.target_width), scale)
        out_scale = np.minimum(target[0] / in_h, target[1] / in_w)
        out_h, out_w = np.round(np.multiply((in_h, in_w), out_scale)).astype(int)
        return ResizeTransform(in_h, in_w, int(out_h), int(out_w), self.interp)


class FixedSizeCrop(Augmentation):
    """LSJ crop: random ``crop_size`` window when larger, then pad bottom/right up to it.

    Args:
        crop_size: (height, width).
        pad: pad smaller images up to ``crop_size``.
        pad_value: image fill.
        seg_pad_value: label-map fill.
    """

    def __init__(
        self,
        crop_size: tuple[int, int],
        pad: bool = True,
        pad_value: float = 128.0,
        seg_pad_value: int = 255,
    ):
        self.crop_size = tuple(crop_size)
        self.pad, self.pad_value, self.seg_pad_value = pad, pad_value, seg_pad_value

    def get_transform(self, image: np.ndarray) -> Transform:
        in_size = np.asarray(image.shape[:2])
        out_size = np.asarray(self.crop_size)
        max_offset = np.maximum(in_size - out_size, 0)
        offset = np.round(max_offset * np.random.uniform(0.0, 1.0)).astype(int)
        tfms: list[Transform] = [
            CropTransform(
                int(offset[1]),
                int(offset[0]),
                int(out_size[1]),
                int(out_size[0]),
                int(in_size[1]),
                int(in_size[0]),
            )
        ]
        if self.pad:
            pad = np.maximum(out_size - in_size, 0)
            kept = np.minimum(in_size, out_size)
            tfms.append(
                PadTransform(
                    0,
                    0,
                    int(pad[1]),
                    int(pad[0]),
                    int(kept[1]),
                    int(kept[0]),
                    self.pad_value,
                    self.seg_pad_value,
                )
            )
        return TransformList(tfms)


class RandomCrop(Augmentation):
    """Random crop; ``crop_type`` one of relative_range, relative, absolute, absolute_range.

    - relative: (H * s0, W * s1); relative_range: s sampled in [crop_size, 1].
    - absolute: (min(s0, H), min(s1, W)); absolute_range: sides sampled in [s0, min(side, s1)].
    """

    def __init__(self, crop_type: str, crop_size: tuple[float, float] | list[float]):
        if crop_type not in _CROP_TYPES:
            raise ValueError(
                f"crop_type (INPUT.CROP.TYPE) must be one of {_CROP_TYPES}, got {crop_type!r}"
            )
        self.crop_type, self.crop_size = crop_type, tuple(crop_size)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        crop_h, crop_w = self.get_crop_size((h, w))
        y0 = np.random.randint(h - crop_h + 1)
        x0 = np.random.randint(w - crop_w + 1)
        return CropTransform(x0, y0, crop_w, crop_h, w, h)

    def get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Crop (height, width) in pixels for an image of ``image_size`` (height, width)."""
        h, w = image_size
        if self.crop_type == "relative":
            ch, cw = self.crop_size
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            crop_size = np.asarray(self.crop_size, dtype=np.float32)
            ch, cw = crop_size + np.random.rand(2) * (1 - crop_size)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "absolute":
            return min(int(self.crop_size[0]), h), min(int(self.crop_size[1]), w)
        lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
        if lo > hi:
            raise ValueError(f"absolute_range crop needs min <= max, got {self.crop_size}")
        ch = np.random.randint(min(h, lo), min(h, hi) + 1)
        cw = np.random.randint(min(w, lo), min(w, hi) + 1)
        return ch, cw


class RandomCropCategoryAreaConstraint(Augmentation):
    """Random crop in which no single category covers more than ``single_category_max_area``.

    Up to 10 windows are tried; the last one is used if none qualifies. ``ignored_category``
    (usually the ignore label) may exceed the ratio.
    """

    input_args = ("image", "sem_seg")

    def __init__(
        self,
        crop_type: str,
        crop_size: tuple[float, float] | list[float],
        single_category_max_area: float = 1.0,
        ignored_category: int | None = None,
    ):
        self.crop_aug = RandomCrop(crop_type, crop_size)
        self.single_category_max_area = single_category_max_area
        self.ignored_category = ignored_category

    def get_transform(self, image: np.ndarray, sem_seg: np.ndarray) -> Transform:
        if self.single_category_max_area >= 1.0:
            return self.crop_aug.get_transform(image)
        h, w = sem_seg.shape
        for _ in range(10):
            crop_h, crop_w = self.crop_aug.get_crop_size((h, w))
            y0 = np.random.randint(h - crop_h + 1)
            x0 = np.random.randint(w - crop_w + 1)
            window = sem_seg[y0 : y0 + crop_h, x0 : x0 + crop_w]
            labels, counts = np.unique(window, return_counts=True)
            if self.ignored_category is not None:
                counts = counts[labels != self.ignored_category]
            if len(counts) > 1 and np.max(counts) < np.sum(counts) * self.single_category_max_area:
                break
        return CropTransform(x0, y0, crop_w, crop_h, w, h)


# detectron2's name, used by configs and code that port from the original.
RandomCrop_CategoryAreaConstraint = RandomCropCategoryAreaConstraint
