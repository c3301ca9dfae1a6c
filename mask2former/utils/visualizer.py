"""Draw semantic, panoptic and instance predictions onto an image (numpy + OpenCV only).

Every segment is alpha-blended in a colour taken from the dataset metadata
(``stuff_colors`` for semantic/stuff segments, ``thing_colors`` for things), outlined, and
labelled with its class name (and score) at the point deepest inside the segment, with a font
size that follows the image size.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# What draw_predictions can draw; "auto" picks the first the predictions contain.
TASKS = ("auto", "panoptic", "instance", "semantic")


@dataclass
class Segment:
    """One thing to draw: a boolean mask, an RGB colour and an optional label."""

    mask: np.ndarray
    color: tuple[int, int, int]
    label: str | None = None


def fallback_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for ``index`` (golden-ratio hue walk)."""
    hue = (index * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(red * 255), int(green * 255), int(blue * 255)


def _meta_get(metadata: Any, key: str, default: Any = None) -> Any:
    if metadata is None:
        return default
    if isinstance(metadata, dict):
        return metadata.get(key, default)
    return getattr(metadata, key, default)


def class_color(metadata: Any, key: str, index: int) -> tuple[int, int, int]:
    """Colour of class ``index`` from ``metadata.<key>`` (e.g. "stuff_colors"), or a fallback."""
    colors = _meta_get(metadata, key)
    if colors is not None and 0 <= index < len(colors):
        return tuple(int(c) for c in colors[index])  # type: ignore[return-value]
    return fallback_color(index)


def class_name(metadata: Any, key: str, index: int) -> str:
    """Name of class ``index`` from ``metadata.<key>`` (e.g. "thing_classes"), or its id."""
    names = _meta_get(metadata, key)
    if names is not None and 0 <= index < len(names):
        return str(names[index])
    return str(index)


class Visualizer:
    """Blend segments into an RGB image.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image.
        metadata: dataset metadata (object or dict) with class names and colours.
        alpha: opacity of the mask colour.
        draw_contours: outline every segment.
        draw_labels: write class names (and scores) inside segments.
    """

    def __init__(
        self,
        image_rgb: np.ndarray,
        metadata: Any = None,
        *,
        alpha: float = 0.5,
        draw_contours: bool = True,
        draw_labels: bool = True,
    ) -> None:
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(
                f"image_rgb must be an (H, W, 3) uint8 array, got {image_rgb.shape} "
                f"{image_rgb.dtype}"
            )
        self.image = image_rgb
        self.metadata = metadata
        self.alpha = alpha
        self.draw_contours = draw_contours
        self.draw_labels = draw_labels

    def draw_segments(self, segments: Sequence[Segment]) -> np.ndarray:
        """Return a new (H, W, 3) uint8 RGB image with ``segments`` drawn in order."""
        canvas = self.image.astype(np.float32)
        for seg in segments:
            color = np.asarray(seg.color, dtype=np.float32)
            canvas[seg.mask] = canvas[seg.mask] * (1.0 - self.alpha) + color * self.alpha
        out = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
        if self.draw_contours:
            for seg in segments:
                self._draw_contour(out, seg)
        if self.draw_labels:
            for seg in segments:
                if seg.label:
                    self._draw_label(out, seg)
        return out

    def _draw_contour(self, canvas: np.ndarray, seg: Segment) -> None:
        contours, _ = cv2.findContours(
            seg.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        edge = tuple(int(c * 0.6) for c in seg.color)
        cv2.drawContours(canvas, contours, -1, edge, thickness=self._line_width())

    def _line_width(self) -> int:
        return max(1, round(min(self.image.shape[:2]) / 300))

    def _draw_label(self, canvas: np.ndarray, seg: Segment) -> None:
        mask = seg.mask.astype(np.uint8)
        if mask.sum() == 0:
            return
        # The point farthest from the segment border keeps the text inside the segment.
        distance = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        font_scale = max(0.3, min(self.image.shape[:2]) / 900)
        thickness = max(1, round(font_scale * 1.5))
        (text_w, text_h), _ = cv2.getTextSize(
            seg.label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        height, width = canvas.shape[:2]
        origin_x = int(np.clip(x - text_w // 2, 0, max(0, width - text_w)))
        origin_y = int(np.clip(y + text_h // 2, text_h, height - 1))
        # Dark outline under light text stays readable on any colour.
        cv2.putText(
            canvas,
            seg.label,
            (origin_x, origin_y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            canvas,
            seg.label,
            (origin_x, origin_y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )

    def draw_sem_seg(self, sem_seg: np.ndarray, ignore_label: int | None = 255) -> np.ndarray:
        """Draw an (H, W) map of contiguous class ids (``stuff_classes`` / ``stuff_colors``)."""
        segments = []
        for label in np.unique(sem_seg):
            if ignore_label is not None and label == ignore_label:
                continue
            segments.append(
                Segment(
                    mask=sem_seg == label,
                    color=class_color(self.metadata, "stuff_colors", int(label)),
                    label=class_name(self.metadata, "stuff_classes", int(label)),
                )
            )
        return self.draw_segments(segments)

    def draw_panoptic_seg(
        self, panoptic_seg: np.ndarray, segments_info: Sequence[dict]
    ) -> np.ndarray:
        """Draw an (H, W) segment-id map with detectron2 ``segments_info`` (id 0 = void)."""
        segments = []
        for info in segments_info:
            category = int(info["category_id"])
            prefix = "thing" if info.get("isthing", False) else "stuff"
            label = class_name(self.metadata, f"{prefix}_classes", category)
            if "score" in info and info.get("isthing", False):
                label = f"{label} {100 * float(info['score']):.0f}%"
            segments.append(
                Segment(
                    mask=panoptic_seg == info["id"],
                    color=class_color(self.metadata, f"{prefix}_colors", category),
                    label=label,
                )
            )
        return self.draw_segments(segments)

    def draw_instances(
        self,
        masks: np.ndarray,
        classes: Sequence[int],
        scores: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Draw (N, H, W) boolean instance masks, largest first so small ones stay visible."""
        order = np.argsort(-masks.reshape(len(masks), -1).sum(1)) if len(masks) else []
        segments = []
        for idx in order:
            category = int(classes[idx])
            label = class_name(self.metadata, "thing_classes", category)
            if scores is not None:
                label = f"{label} {100 * float(scores[idx]):.0f}%"
            segments.append(
                Segment(
                    mask=masks[idx].astype(bool),
                    color=class_color(self.metadata, "thing_colors", category),
                    label=label,
                )
            )
        return self.draw_segments(segments)


def draw_predictions(
    image_rgb: np.ndarray,
    predictions: dict[str, Any],
    metadata: Any,
    *,
    task: str = "auto",
    confidence_threshold: float = 0.5,
    alpha: float = 0.5,
    draw_contours: bool = True,
    draw_labels: bool = True,
) -> np.ndarray:
    """Draw one image's predictions; returns an (H, W, 3) uint8 RGB image.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image at the predictions' size.
        predictions: the model's output dict for the image.
        metadata: dataset metadata (class names and colours).
        task: which prediction to draw (see ``TASKS``); "auto" takes panoptic, then
            instances, then semantic.
        confidence_threshold: instances scoring below it are not drawn.
        alpha, draw_contours, draw_labels: see ``Visualizer``.
    """
    available = {
        "panoptic": "panoptic_seg" in predictions,
        "instance": "instances" in predictions,
        "semantic": "sem_seg" in predictions,
    }
    if task == "auto":
        task = next((name for name, present in available.items() if present), "")
    if not available.get(task, False):
        raise ValueError(
            f"task={task or 'auto'}: the model predicts only "
            f"{[name for name, present in available.items() if present]}; switch tasks on with "
            "MODEL.MASK_FORMER.TEST.{SEMANTIC,INSTANCE,PANOPTIC}_ON"
        )
    visualizer = Visualizer(
        image_rgb, metadata, alpha=alpha, draw_contours=draw_contours, draw_labels=draw_labels
    )
    if task == "panoptic":
        panoptic_ids, segments_info = predictions["panoptic_seg"]
        return visualizer.draw_panoptic_seg(panoptic_ids.cpu().numpy(), segments_info)
    if task == "instance":
        instances = predictions["instances"].to("cpu")
        instances = instances[instances.scores >= confidence_threshold]
        return visualizer.draw_instances(
            instances.pred_masks.numpy() > 0.5,
            instances.pred_classes.tolist(),
            instances.scores.tolist(),
        )
    return visualizer.draw_sem_seg(predictions["sem_seg"].argmax(dim=0).cpu().numpy())
