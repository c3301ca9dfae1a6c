"""Deterministic transforms (applied identically to image, label maps, boxes and polygons).

The generic ones (flip, crop, pad, no-op, lists) come from ``fvcore.transforms``; this module
adds the resize, a polygon-aware crop that needs no geometry library, and SSD colour jitter.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from fvcore.transforms.transform import CropTransform as _FvcoreCropTransform
from fvcore.transforms.transform import Transform
from PIL import Image

__all__ = ["ColorAugSSDTransform", "CropTransform", "ResizeTransform"]

_PIL_TO_TORCH_MODE = {
    Image.Resampling.NEAREST: "nearest",
    Image.Resampling.BILINEAR: "bilinear",
    Image.Resampling.BICUBIC: "bicubic",
}


class ResizeTransform(Transform):
    """Resize (h, w) -> (new_h, new_w).

    uint8 arrays go through PIL (``interp``, default bilinear); other dtypes (e.g. float label
    maps) through ``torch.nn.functional.interpolate`` with the matching mode, as detectron2 does.
    Label maps always use nearest.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int | None = None):
        super().__init__()
        interp = Image.Resampling.BILINEAR if interp is None else interp
        self._set_attributes(dict(h=h, w=w, new_h=new_h, new_w=new_w, interp=interp))

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"ResizeTransform expects an image of size {(self.h, self.w)}, got {img.shape[:2]}"
            )
        method = interp if interp is not None else self.interp
        if img.dtype == np.uint8:
            single_channel = img.ndim == 3 and img.shape[2] == 1
            pil = Image.fromarray(img[:, :, 0] if single_channel else img)
            out = np.asarray(pil.resize((self.new_w, self.new_h), method))
            return np.expand_dims(out, -1) if single_channel else out
        tensor = torch.from_numpy(np.ascontiguousarray(img))
        shape = list(tensor.shape)
        shape_4d = shape[:2] + [1] * (4 - len(shape)) + shape[2:]
        tensor = tensor.view(shape_4d).permute(2, 3, 0, 1)  # h, w, (c) -> n, c, h, w
        mode = _PIL_TO_TORCH_MODE[method]
        align_corners = None if mode == "nearest" else False
        tensor = F.interpolate(
            tensor, (self.new_h, self.new_w), mode=mode, align_corners=align_corners
        )
        shape[:2] = (self.new_h, self.new_w)
        return tensor.permute(2, 3, 0, 1).reshape(shape).numpy()

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.Resampling.NEAREST)

    def inverse(self) -> ResizeTransform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


def _clip_polygon(points: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman clip of an (N, 2) polygon to the box [x0, x1] x [y0, y1]."""
    # Each edge: (axis, bound, keep_greater)
    for axis, bound, keep_greater in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if len(points) == 0:
            break
        inside = points[:, axis] >= bound if keep_greater else points[:, axis] <= bound
        out = []
        for i in range(len(points)):
            cur, prev = points[i], points[i - 1]
            cur_in, prev_in = inside[i], inside[i - 1]
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(prev + t * (cur - prev))
            if cur_in:
                out.append(cur)
        points = np.asarray(out, dtype=np.float64).reshape(-1, 2)
    return points


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


class CropTransform(_FvcoreCropTransform):
    """fvcore's crop, with polygons clipped to the window by Sutherland-Hodgman (no shapely).

    Polygons that vanish (fewer than 3 vertices or zero area) are dropped.
    """

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        x1, y1 = self.x0 + self.w, self.y0 + self.h
        kept = []
        for polygon in polygons:
            clipped = _clip_polygon(np.asarray(polygon, dtype=np.float64), self.x0, self.y0, x1, y1)
            if len(clipped) >= 3 and _polygon_area(clipped) > 0:
                kept.append(self.apply_coords(clipped))
        return kept


class ColorAugSSDTransform(Transform):
    """SSD-style photometric jitter (brightness, contrast, saturation, hue) on uint8 images.

    Random draws use Python's ``random`` module (seeded per data-loader worker). Geometry and
    label maps are untouched.
    """

    def __init__(
        self,
        img_format: str,
        brightness_delta: int = 32,
        contrast_low: float = 0.5,
        contrast_high: float = 1.5,
        saturation_low: float = 0.5,
        saturation_high: float = 1.5,
        hue_delta: int = 18,
    ):
        super().__init__()
        if img_format not in ("BGR", "RGB"):
            raise ValueError(
                f"ColorAugSSDTransform: img_format must be BGR or RGB, got {img_format}"
            )
        self._set_attributes(
            dict(
                is_rgb=img_format == "RGB",
                brightness_delta=brightness_delta,
                contrast_low=contrast_low,
                contrast_high=contrast_high,
                saturation_low=saturation_low,
                saturation_high=saturation_high,
                hue_delta=hue_delta,
            )
        )

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if self.is_rgb:
            img = img[:, :, [2, 1, 0]]
        img = self._brightness(img)
        if random.randrange(2):
            img = self._hue(self._saturation(self._contrast(img)))
        else:
            img = self._contrast(self._hue(self._saturation(img)))
        if self.is_rgb:
            img = img[:, :, [2, 1, 0]]
        return img

    @staticmethod
    def _convert(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
        return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    def _brightness(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self._convert(
                img, beta=random.uniform(-self.brightness_delta, self.brightness_delta)
            )
        return img

    def _contrast(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self._convert(img, alpha=random.uniform(self.contrast_low, self.contrast_high))
        return img

    def _saturation(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            alpha = random.uniform(self.saturation_low, self.saturation_high)
            hsv[:, :, 1] = self._convert(hsv[:, :, 1], alpha=alpha)
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    def _hue(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            shift = random.randint(-self.hue_delta, self.hue_delta)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + shift) % 180
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img
