"""Draw a dataset's ground truth (raw records or training-mapper samples) and saved prediction
files, for ``tools/visualize_data.py`` and ``tools/visualize_json_results.py``.

Saved predictions are read in the public formats this project writes: a COCO instances
results JSON (``coco_instances_results.json`` of evaluation, ``instances.json`` of
``demo.py --save-raw``; dataset category ids), and the ``sem_seg/<stem>.png`` and
``panoptic/<stem>.png`` + ``panoptic.json`` of ``demo.py --save-raw``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch

from mask2former.data.detection_utils import read_image
from mask2former.structures.masks import coco_segmentation_rle
from mask2former.utils.panoptic_ids import rgb2id
from mask2former.utils.visualizer import Segment, Visualizer, class_color, class_name

__all__ = [
    "SavedPredictions",
    "draw_mapped_sample",
    "draw_record",
    "side_by_side",
]


def _decode(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO polygon list / RLE -> (H, W) bool mask."""
    return mask_util.decode(coco_segmentation_rle(segmentation, height, width)).astype(bool)


def _stack(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, height, width), bool)


def draw_record(image_rgb: np.ndarray, record: dict, metadata: Any) -> np.ndarray:
    """Draw the ground truth of a dataset record: panoptic if it has ``pan_seg_file_name``,
    else its ``annotations``, else its ``sem_seg_file_name``.

    Args:
        image_rgb: (H, W, 3) uint8 image of the record.
        record: a dataset dict (contiguous category ids, as the catalog returns it).
        metadata: the dataset's metadata.
    """
    visualizer = Visualizer(image_rgb, metadata)
    height, width = image_rgb.shape[:2]
    if "pan_seg_file_name" in record:
        ids = rgb2id(read_image(record["pan_seg_file_name"], "RGB"))
        return visualizer.draw_panoptic_seg(ids, record["segments_info"])
    if "annotations" in record:
        anns = [a for a in record["annotations"] if "segmentation" in a]
        masks = _stack([_decode(a["segmentation"], height, width) for a in anns], height, width)
        return visualizer.draw_instances(masks, [a["category_id"] for a in anns])
    if "sem_seg_file_name" in record:
        labels = read_image(record["sem_seg_file_name"])
        return visualizer.draw_sem_seg(labels, ignore_label=metadata.get("ignore_label", 255))
    raise ValueError(
        f"Record of {record.get('file_name')} has no ground truth to draw (pan_seg_file_name, "
        "annotations or sem_seg_file_name)"
    )


def draw_mapped_sample(sample: dict, metadata: Any, image_format: str = "RGB") -> np.ndarray:
    """Draw a training-mapper output (after augmentation): its ``instances`` masks, else its
    ``sem_seg``.

    Args:
        sample: mapper output with ``image`` (C, H, W) and ``instances`` (``gt_masks``
            (N, H, W), ``gt_classes`` (N,)) and/or ``sem_seg`` (H, W).
        metadata: the dataset's metadata.
        image_format: INPUT.FORMAT of the config ("RGB" or "BGR").
    """
    image = sample["image"].permute(1, 2, 0).to(torch.uint8).numpy()
    image = np.ascontiguousarray(image[:, :, ::-1] if image_format == "BGR" else image)
    visualizer = Visualizer(image, metadata)
    instances = sample.get("instances")
    if instances is not None and len(instances) > 0:
        masks = instances.gt_masks
        masks = (masks.tensor if hasattr(masks, "tensor") else masks).numpy().astype(bool)
        # Mask2Former's panoptic / semantic classes index stuff_classes (every class).
        key = "stuff_classes" if metadata.get("stuff_classes") else "thing_classes"
        colors = "stuff_colors" if key == "stuff_classes" else "thing_colors"
        segments = [
            Segment(
                mask=mask,
                color=class_color(metadata, colors, int(c)),
                label=class_name(metadata, key, int(c)),
            )
            for mask, c in zip(masks, instances.gt_classes.tolist())
        ]
        return visualizer.draw_segments(segments)
    if "sem_seg" in sample:
        return visualizer.draw_sem_seg(
            sample["sem_seg"].numpy(), ignore_label=metadata.get("ignore_label", 255)
        )
    return image


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """Two (H, W, 3) images next to each other with a white gap."""
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + gap :] = right
    return canvas


class SavedPredictions:
    """Predictions saved as files, looked up per dataset record.

    Args:
        path: a COCO instances results JSON, or a ``demo.py --save-raw`` output folder.
        metadata: the dataset's metadata (maps dataset category ids to contiguous ids).

    Raises:
        FileNotFoundError: ``path`` holds none of the known files.
    """

    def __init__(self, path: str, metadata: Any) -> None:
        self.metadata = metadata
        self.instances: dict[Any, list[dict]] = defaultdict(list)
        self.sem_seg_dir = self.panoptic_dir = None
        self.panoptic: dict[str, dict] = {}
        instances_json = path if os.path.isfile(path) else os.path.join(path, "instances.json")
        if os.path.isfile(instances_json):
            with open(instances_json) as f:
                for result in json.load(f):
                    self.instances[result["image_id"]].append(result)
        if os.path.isdir(os.path.join(path, "sem_seg")):
            self.sem_seg_dir = os.path.join(path, "sem_seg")
        if os.path.isfile(os.path.join(path, "panoptic.json")):
            self.panoptic_dir = os.path.join(path, "panoptic")
            with open(os.path.join(path, "panoptic.json")) as f:
                anns = json.load(f)["annotations"]
            self.panoptic = {os.path.splitext(a["file_name"])[0]: a for a in anns}
        if not (self.instances or self.sem_seg_dir or self.panoptic):
            raise FileNotFoundError(
                f"{path}: expected a COCO instances results JSON, or a folder with "
                "instances.json, sem_seg/ or panoptic.json (demo.py --save-raw)"
            )

    def draw(self, image_rgb: np.ndarray, record: dict, conf_threshold: float) -> np.ndarray:
        """Draw the predictions of ``record``'s image, of the task of its ground truth first
        (panoptic, instances, semantic), else of any task saved; the image unchanged when
        there are none."""
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        visualizer = Visualizer(image_rgb, self.metadata)
        height, width = image_rgb.shape[:2]
        results = self.instances.get(record.get("image_id")) or self.instances.get(stem)
        png = os.path.join(self.sem_seg_dir or "", stem + ".png")
        available = {
            "panoptic": stem in self.panoptic,
            "instances": bool(results),
            "semantic": self.sem_seg_dir is not None and os.path.isfile(png),
        }
        ground_truth = (
            "panoptic"
            if "pan_seg_file_name" in record
            else "instances"
            if "annotations" in record
            else "semantic"
        )
        order = [ground_truth, *(task for task in available if task != ground_truth)]
        task = next((t for t in order if available[t]), None)
        if task == "panoptic":
            return self._draw_panoptic(visualizer, self.panoptic[stem])
        if task == "instances":
            results = [r for r in results if r.get("score", 1.0) >= conf_threshold]
            to_contiguous = self.metadata.get("thing_dataset_id_to_contiguous_id") or {}
            masks = [_decode(r["segmentation"], height, width) for r in results]
            return visualizer.draw_instances(
                _stack(masks, height, width),
                [to_contiguous.get(r["category_id"], r["category_id"]) for r in results],
                [r.get("score", 1.0) for r in results],
            )
        if task == "semantic":
            ignore_label = self.metadata.get("ignore_label", 255)  # never predicted
            return visualizer.draw_sem_seg(read_image(png), ignore_label=ignore_label)
        return image_rgb

    def _draw_panoptic(self, visualizer: Visualizer, ann: dict) -> np.ndarray:
        ids = rgb2id(read_image(os.path.join(self.panoptic_dir, ann["file_name"]), "RGB"))
        things = self.metadata.get("thing_dataset_id_to_contiguous_id") or {}
        stuff = self.metadata.get("stuff_dataset_id_to_contiguous_id") or {}
        segments = []
        for info in ann["segments_info"]:
            dataset_id = info["category_id"]
            isthing = dataset_id in things
            contiguous = things[dataset_id] if isthing else stuff.get(dataset_id, dataset_id)
            segments.append({"id": info["id"], "category_id": contiguous, "isthing": isthing})
        return visualizer.draw_panoptic_seg(ids, segments)
