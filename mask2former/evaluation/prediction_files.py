"""Write model predictions in the public file formats (used by ``demo/demo.py --save-raw``).

- semantic: one PNG of contiguous class ids per image (uint8, or uint16 beyond 255 classes);
- panoptic: COCO panoptic format, one RGB-encoded id PNG per image (``R + 256 G + 256^2 B``)
  plus one JSON with ``annotations`` (segments with dataset category ids) and ``categories``;
- instances: COCO result format, a JSON list of ``{image_id, category_id, score, bbox,
  segmentation}`` with RLE masks (pycocotools).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from mask2former.evaluation.coco_evaluation import instances_to_coco_json
from mask2former.utils.panoptic_ids import id2rgb

__all__ = [
    "RawPredictionWriter",
    "panoptic_annotation",
    "panoptic_categories",
    "semantic_label_map",
]


def semantic_label_map(sem_seg: torch.Tensor) -> np.ndarray:
    """(K, H, W) class scores -> (H, W) contiguous class ids (uint8, uint16 if K > 255)."""
    labels = sem_seg.argmax(dim=0).cpu().numpy()
    return labels.astype(np.uint8 if sem_seg.shape[0] <= 255 else np.uint16)


def _inverse(mapping: dict | None) -> dict[int, int]:
    return {} if mapping is None else {int(v): int(k) for k, v in mapping.items()}


def panoptic_categories(metadata: Any) -> list[dict[str, Any]]:
    """COCO panoptic ``categories`` from detectron2-style metadata (dataset ids, names)."""
    thing_to_dataset = _inverse(metadata.get("thing_dataset_id_to_contiguous_id"))
    stuff_to_dataset = _inverse(metadata.get("stuff_dataset_id_to_contiguous_id"))
    categories: dict[int, dict[str, Any]] = {}
    for names_key, table, isthing in (
        ("stuff_classes", stuff_to_dataset, 0),
        ("thing_classes", thing_to_dataset, 1),
    ):
        for index, name in enumerate(metadata.get(names_key) or []):
            dataset_id = table.get(index, index)
            # COCO-style panoptic metadata lists things in stuff_classes too: a thing wins.
            if isthing or dataset_id not in categories:
                categories[dataset_id] = {"id": dataset_id, "name": name, "isthing": isthing}
    return [categories[k] for k in sorted(categories)]


def panoptic_annotation(
    panoptic_ids: np.ndarray,
    segments_info: list[dict[str, Any]],
    metadata: Any,
    image_id: int | str,
    file_name: str,
) -> dict[str, Any]:
    """One COCO panoptic ``annotations`` entry.

    Args:
        panoptic_ids: (H, W) segment ids, 0 = void.
        segments_info: the model's segments ``{"id", "category_id" (contiguous), "isthing"}``.
        metadata: dataset metadata with the ``*_dataset_id_to_contiguous_id`` tables.
        image_id: id of the image.
        file_name: name of the segment PNG.
    """
    tables = {
        True: _inverse(metadata.get("thing_dataset_id_to_contiguous_id")),
        False: _inverse(metadata.get("stuff_dataset_id_to_contiguous_id")),
    }
    segments = []
    for info in segments_info:
        mask = panoptic_ids == info["id"]
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        category = int(info["category_id"])
        isthing = bool(info.get("isthing", False))
        x0, y0 = int(xs.min()), int(ys.min())
        segments.append(
            {
                "id": int(info["id"]),
                "category_id": tables[isthing].get(category, category),
                "iscrowd": 0,
                "area": int(len(ys)),
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
            }
        )
    return {"image_id": image_id, "file_name": file_name, "segments_info": segments}


class RawPredictionWriter:
    """Collect predictions image by image and write them under ``output_dir``.

    Layout: ``sem_seg/<stem>.png``, ``panoptic/<stem>.png`` + ``panoptic.json``,
    ``instances.json``; each only for the tasks present in the predictions.

    Args:
        output_dir: folder to write into (created as needed).
        metadata: dataset metadata (class names and dataset-id tables).
    """

    def __init__(self, output_dir: str, metadata: Any) -> None:
        self.output_dir = output_dir
        self.metadata = metadata
        self._panoptic_annotations: list[dict[str, Any]] = []
        self._instance_results: list[dict[str, Any]] = []
        self._has_instances = False

    def add(self, stem: str, predictions: dict[str, Any]) -> None:
        """Write / collect one image's predictions; ``stem`` is its id and file stem."""
        if "sem_seg" in predictions:
            folder = os.path.join(self.output_dir, "sem_seg")
            os.makedirs(folder, exist_ok=True)
            labels = semantic_label_map(predictions["sem_seg"])
            Image.fromarray(labels).save(os.path.join(folder, f"{stem}.png"))
        if "panoptic_seg" in predictions:
            panoptic_ids, segments_info = predictions["panoptic_seg"]
            panoptic_ids = panoptic_ids.cpu().numpy().astype(np.int64)
            folder = os.path.join(self.output_dir, "panoptic")
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(id2rgb(panoptic_ids)).save(os.path.join(folder, f"{stem}.png"))
            self._panoptic_annotations.append(
                panoptic_annotation(panoptic_ids, segments_info, self.metadata, stem, f"{stem}.png")
            )
        if "instances" in predictions:
            self._has_instances = True
            results = instances_to_coco_json(predictions["instances"].to("cpu"), stem)
            to_dataset = _inverse(self.metadata.get("thing_dataset_id_to_contiguous_id"))
            for result in results:
                result["category_id"] = to_dataset.get(result["category_id"], result["category_id"])
            self._instance_results.extend(results)

    def close(self) -> None:
        """Write the JSON files of the collected predictions."""
        os.makedirs(self.output_dir, exist_ok=True)
        if self._panoptic_annotations:
            panoptic = {
                "annotations": self._panoptic_annotations,
                "categories": panoptic_categories(self.metadata),
            }
            with open(os.path.join(self.output_dir, "panoptic.json"), "w") as f:
                json.dump(panoptic, f)
        if self._has_instances:
            with open(os.path.join(self.output_dir, "instances.json"), "w") as f:
                json.dump(self._instance_results, f)
