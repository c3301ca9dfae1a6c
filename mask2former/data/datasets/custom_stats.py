"""Statistics of a registered dataset (``tools/dataset_stats.py``): images, instances or
segments per class, mask areas, images without annotations, and warnings about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.structures.masks import coco_segmentation_rle

__all__ = ["ClassStats", "DatasetStats", "dataset_stats", "format_stats"]


@dataclass
class ClassStats:
    """One class: how many objects/segments (semantic: images showing it), in how many
    images, and their areas in pixels."""

    name: str
    count: int = 0
    images: int = 0
    areas: list[int] = field(default_factory=list)


@dataclass
class DatasetStats:
    """What :func:`dataset_stats` found."""

    name: str
    kind: str  # "instances", "panoptic" or "semantic"
    num_images: int
    classes: list[ClassStats]
    empty_images: list[str]
    warnings: list[str]


def _area(segmentation: Any, height: int, width: int) -> int:
    return int(mask_util.area(coco_segmentation_rle(segmentation, height, width)))


def _objects(record: dict, ignore_label: int) -> list[tuple[int, int]]:
    """``(contiguous class, area)`` of every object / segment / class present in a record."""
    if "pan_seg_file_name" in record:
        return [(s["category_id"], int(s.get("area", 0))) for s in record["segments_info"]]
    if "annotations" in record:
        return [
            (a["category_id"], _area(a["segmentation"], record["height"], record["width"]))
            for a in record["annotations"]
            if "segmentation" in a
        ]
    with Image.open(record["sem_seg_file_name"]) as image:
        labels = np.asarray(image).astype(np.int64).ravel()
    counts = np.bincount(labels[labels != ignore_label])
    return [(int(c), int(n)) for c, n in enumerate(counts) if n > 0]


def dataset_stats(name: str, records: list[dict], metadata: Any) -> DatasetStats:
    """Count the classes of ``records`` (as the catalog returns them) of dataset ``name``.

    Class names come from ``stuff_classes`` for panoptic and semantic datasets (Mask2Former's
    one id space), else ``thing_classes``.
    """
    first = records[0] if records else {}
    kind = (
        "panoptic"
        if "pan_seg_file_name" in first
        else "instances"
        if "annotations" in first
        else "semantic"
    )
    names_key = "thing_classes" if kind == "instances" else "stuff_classes"
    names = list(metadata.get(names_key) or [])
    classes = [ClassStats(n) for n in names]
    empty, out_of_range = [], set()
    for record in records:
        objects = _objects(record, metadata.get("ignore_label", 255))
        if not objects:
            empty.append(record["file_name"])
        seen = set()
        for category, area in objects:
            if not 0 <= category < len(classes):
                out_of_range.add(category)
                continue
            stats = classes[category]
            stats.count += 1
            stats.areas.append(area)
            seen.add(category)
        for category in seen:
            classes[category].images += 1
    warnings = [f"class {c.name!r} has no samples" for c in classes if c.count == 0]
    if empty:
        warnings.append(f"{len(empty)} of {len(records)} images have no annotation")
    if out_of_range:
        warnings.append(
            f"class ids {sorted(out_of_range)} are outside the {len(names)} {names_key}"
        )
    return DatasetStats(name, kind, len(records), classes, empty, warnings)


def format_stats(stats: DatasetStats) -> str:
    """A plain-text report: one line per class, then the warnings."""
    unit = "images with it" if stats.kind == "semantic" else f"{stats.kind} segments"
    lines = [
        f"Dataset {stats.name!r} ({stats.kind}): {stats.num_images} images, "
        f"{len(stats.empty_images)} without annotation",
        f"{'class':<24}{'count':>8}{'images':>8}{'min area':>10}{'mean area':>11}"
        f"{'max area':>10}   (count = {unit})",
    ]
    for c in stats.classes:
        areas = c.areas or [0]
        lines.append(
            f"{c.name[:23]:<24}{c.count:>8}{c.images:>8}{min(areas):>10}"
            f"{round(float(np.mean(areas))):>11}{max(areas):>10}"
        )
    lines += [f"WARNING: {w}" for w in stats.warnings]
    return "\n".join(lines)
