"""What the web demo shows and offers for download from one image's predictions.

- ``segment_rows``: the table of segments (class, score, area) of one task;
- ``render``: the overlay drawn by ``mask2former.utils.visualizer``;
- ``ExportWriter``: overlays, PNG masks and COCO JSON of many images in one zip file.

Scores: an instance's score is the model's instance score. Panoptic and semantic segments
have none of their own; theirs is the mean, over the segment's pixels, of the class's share of
the semantic scores (how clearly the class won there), when semantic results are present.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import cv2
import numpy as np
import torch

from mask2former.evaluation.prediction_files import RawPredictionWriter
from mask2former.utils.visualizer import class_name, draw_predictions

__all__ = [
    "PAGE_TASKS",
    "TABLE_HEADERS",
    "ExportWriter",
    "filter_instances",
    "render",
    "segment_rows",
]

# The page's task choices, and the prediction key each one needs.
PAGE_TASKS = {"panoptic": "panoptic_seg", "instance": "instances", "semantic": "sem_seg"}
TABLE_HEADERS = ["class", "score", "area (pixels)"]


def check_task(predictions: dict[str, Any], task: str) -> None:
    """Raise ValueError naming the tasks the model predicts when ``task`` is not one."""
    if task not in PAGE_TASKS:
        raise ValueError(f"task must be one of {sorted(PAGE_TASKS)}, got {task!r}")
    if PAGE_TASKS[task] not in predictions:
        available = [name for name, key in PAGE_TASKS.items() if key in predictions]
        raise ValueError(
            f"this model does not predict {task} segmentation (it predicts {available}); "
            f"switch it on with MODEL.MASK_FORMER.TEST.{task.upper()}_ON True"
        )


def filter_instances(predictions: dict[str, Any], score_threshold: float) -> dict[str, Any]:
    """A copy of ``predictions`` whose "instances" keep only scores >= ``score_threshold``."""
    if "instances" not in predictions:
        return predictions
    instances = predictions["instances"].to("cpu")
    return {**predictions, "instances": instances[instances.scores >= score_threshold]}


def _class_share(sem_seg: torch.Tensor) -> torch.Tensor:
    """(K, H, W) semantic scores -> each class's share of the pixel's total score."""
    return sem_seg / sem_seg.sum(0, keepdim=True).clamp_min(1e-12)


def _mean_share(share: torch.Tensor | None, category: int, mask: torch.Tensor) -> str:
    if share is None or not 0 <= category < share.shape[0]:
        return ""
    return f"{float(share[category][mask].mean()):.2f}"


def segment_rows(predictions: dict[str, Any], task: str, metadata: Any) -> list[list[str | int]]:
    """Rows ``[class, score, area]`` of the segments ``task`` draws, largest area first.

    Args:
        predictions: one image's predictions (instances already filtered by score).
        task: "panoptic", "instance" or "semantic".
        metadata: dataset metadata with the class names.
    """
    check_task(predictions, task)
    sem_seg = predictions.get("sem_seg")
    share = None if sem_seg is None else _class_share(sem_seg.detach().float().cpu())
    rows: list[list[str | int]] = []
    if task == "instance":
        instances = predictions["instances"]
        areas = (instances.pred_masks > 0.5).flatten(1).sum(1).tolist()
        for category, score, area in zip(
            instances.pred_classes.tolist(), instances.scores.tolist(), areas
        ):
            rows.append([class_name(metadata, "thing_classes", category), f"{score:.2f}", area])
    elif task == "panoptic":
        segment_ids, segments_info = predictions["panoptic_seg"]
        segment_ids = segment_ids.cpu()
        for info in segments_info:
            mask = segment_ids == info["id"]
            category = int(info["category_id"])
            key = "thing_classes" if info.get("isthing", False) else "stuff_classes"
            score = f"{info['score']:.2f}" if "score" in info else ""
            rows.append(
                [
                    class_name(metadata, key, category),
                    score or _mean_share(share, category, mask),
                    int(mask.sum()),
                ]
            )
    else:
        labels = sem_seg.argmax(0).cpu()
        for category in labels.unique().tolist():
            mask = labels == category
            rows.append(
                [
                    class_name(metadata, "stuff_classes", category),
                    _mean_share(share, category, mask),
                    int(mask.sum()),
                ]
            )
    return sorted(rows, key=lambda row: -int(row[2]))


def render(
    image_rgb: np.ndarray, predictions: dict[str, Any], task: str, metadata: Any, opacity: float
) -> np.ndarray:
    """The (H, W, 3) uint8 RGB overlay of ``task``'s segments (instances already filtered)."""
    check_task(predictions, task)
    return draw_predictions(
        image_rgb, predictions, metadata, task=task, confidence_threshold=0.0, alpha=opacity
    )


class ExportWriter:
    """Overlays plus raw predictions of many images, zipped for download.

    Layout inside the zip: ``overlays/<stem>.png``, and ``prediction_files``' layout
    (``sem_seg/<stem>.png``, ``panoptic/<stem>.png`` + ``panoptic.json``, ``instances.json``).

    Args:
        work_dir: an empty folder to write into.
        metadata: dataset metadata (class names, dataset-id tables).
    """

    def __init__(self, work_dir: str, metadata: Any) -> None:
        self.work_dir = work_dir
        self.content_dir = os.path.join(work_dir, "predictions")
        os.makedirs(os.path.join(self.content_dir, "overlays"), exist_ok=True)
        self.raw = RawPredictionWriter(self.content_dir, metadata)

    def add(self, stem: str, overlay_rgb: np.ndarray, predictions: dict[str, Any]) -> str:
        """Write one image's overlay and predictions; returns the overlay's path."""
        path = os.path.join(self.content_dir, "overlays", f"{stem}.png")
        if not cv2.imwrite(path, np.ascontiguousarray(overlay_rgb[:, :, ::-1])):
            raise OSError(f"cv2.imwrite could not write {path}")
        self.raw.add(stem, predictions)
        return path

    def close(self) -> str:
        """Write the JSON files and the zip; returns the zip's path."""
        self.raw.close()
        return shutil.make_archive(
            os.path.join(self.work_dir, "predictions"), "zip", root_dir=self.content_dir
        )
