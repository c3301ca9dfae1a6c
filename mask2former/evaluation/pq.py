"""COCO panoptic quality computed by the rules of panopticapi's ``pq_compute``, with numpy.

Same inputs (ground-truth and prediction JSON files plus their PNG folders), same rules and
the same result dict as ``panopticapi.evaluation.pq_compute``, without depending on
panopticapi (whose releases cap numpy below 2). The rules, per image:

- a ground-truth and a predicted segment of one category match when their IoU exceeds 0.5,
  where the union leaves out the predicted pixels lying on void (id 0) in the ground truth;
  crowd ground truth (``iscrowd == 1``) never matches;
- an unmatched, non-crowd ground-truth segment is a false negative;
- an unmatched prediction is a false positive unless more than half of it lies on void or
  on the crowd region of its own category;
- ground-truth areas come from the JSON ``area`` field, predicted areas from the PNG.

Per category ``PQ = sum(IoU of matches) / (TP + FP/2 + FN/2)``, ``SQ = sum(IoU) / TP``,
``RQ = TP / (TP + FP/2 + FN/2)``; a group's value is the mean over its categories that have
any TP, FP or FN.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mask2former.utils.file_failures import FILE_ERRORS, FileFailures
from mask2former.utils.panoptic_ids import rgb2id

logger = logging.getLogger(__name__)

VOID = 0
# A pair of segments matches when its IoU is above this; unmatched predictions are ignored
# when more than this fraction of them lies on void or crowd.
_MATCH_IOU = 0.5
_IGNORE_FRACTION = 0.5


@dataclass
class PQStatCat:
    """Sums of one category: IoU of matched pairs, true/false positives, false negatives."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: PQStatCat) -> PQStatCat:
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


@dataclass
class PQStat:
    """Per-category :class:`PQStatCat` (indexed by category id), summed over images."""

    per_category: defaultdict[int, PQStatCat] = field(
        default_factory=lambda: defaultdict(PQStatCat)
    )

    def __getitem__(self, category_id: int) -> PQStatCat:
        return self.per_category[category_id]

    def __iadd__(self, other: PQStat) -> PQStat:
        for category_id, stat in other.per_category.items():
            self.per_category[category_id] += stat
        return self

    def pq_average(
        self, categories: Mapping[int, Mapping[str, Any]], isthing: bool | None
    ) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
        """Mean PQ / SQ / RQ over ``categories`` (things, stuff or all when ``isthing`` is None).

        Categories without any TP, FP or FN are left out of the mean (and get zeros in the
        per-class dict). A group with no such category has ``n == 0`` and zero values, where
        panopticapi divides by zero.

        Returns:
            ``{"pq", "sq", "rq", "n"}`` and ``{category_id: {"pq", "sq", "rq"}}``.
        """
        totals = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
        n = 0
        per_class: dict[int, dict[str, float]] = {}
        for category_id, info in categories.items():
            if isthing is not None and (info["isthing"] == 1) != isthing:
                continue
            stat = self.per_category.get(category_id, PQStatCat())
            if stat.tp + stat.fp + stat.fn == 0:
                per_class[category_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            denominator = stat.tp + 0.5 * stat.fp + 0.5 * stat.fn
            values = {
                "pq": stat.iou / denominator,
                "sq": stat.iou / stat.tp if stat.tp != 0 else 0.0,
                "rq": stat.tp / denominator,
            }
            per_class[category_id] = values
            for key, value in values.items():
                totals[key] += value
        if n == 0:
            return {**totals, "n": 0}, per_class
        return {key: value / n for key, value in totals.items()} | {"n": n}, per_class


def _predicted_areas(
    pred_ids: np.ndarray,
    pred_counts: np.ndarray,
    pred_segments: Mapping[int, Mapping[str, Any]],
    categories: Mapping[int, Any],
    image_id: Any,
) -> dict[int, int]:
    """Area of each predicted segment from the PNG; the PNG and segments_info must agree."""
    areas = {}
    for label, count in zip(pred_ids.tolist(), pred_counts.tolist()):
        if label not in pred_segments:
            if label == VOID:
                continue
            raise KeyError(
                f"image {image_id}: segment id {label} is in the prediction PNG but not in its "
                "segments_info"
            )
        category_id = pred_segments[label]["category_id"]
        if category_id not in categories:
            raise KeyError(
                f"image {image_id}: predicted segment {label} has category_id {category_id}, "
                f"which is not among the ground truth's categories {sorted(categories)}"
            )
        areas[label] = count
    missing = [label for label in pred_segments if label not in areas]
    if missing:
        raise KeyError(
            f"image {image_id}: segment ids {missing} are in segments_info but not in the "
            "prediction PNG"
        )
    return areas


def pq_stat_single_image(
    pan_gt: np.ndarray,
    pan_pred: np.ndarray,
    gt_segments: Sequence[Mapping[str, Any]],
    pred_segments: Sequence[Mapping[str, Any]],
    categories: Mapping[int, Any],
    image_id: Any = None,
) -> PQStat:
    """PQ statistics of one image.

    Args:
        pan_gt: (H, W) ground-truth segment ids (0 = void).
        pan_pred: (H, W) predicted segment ids (0 = void).
        gt_segments: the ground truth's ``segments_info`` (``id``, ``category_id``,
            ``area``, ``iscrowd``).
        pred_segments: the prediction's ``segments_info`` (``id``, ``category_id``).
        categories: category id -> category dict (``isthing``); predictions must use these.
        image_id: named in errors.
    """
    if pan_gt.shape != pan_pred.shape:
        raise ValueError(
            f"image {image_id}: ground truth {pan_gt.shape} and prediction {pan_pred.shape} "
            "differ in size"
        )
    # Later duplicates of an id replace earlier ones, as in a dict built from the list.
    gt_segms = {s["id"]: s for s in gt_segments}
    pred_segms = {s["id"]: s for s in pred_segments}
    gt_ids, gt_index = np.unique(pan_gt.ravel(), return_inverse=True)
    pred_ids, pred_index, pred_counts = np.unique(
        pan_pred.ravel(), return_inverse=True, return_counts=True
    )
    pred_area = _predicted_areas(pred_ids, pred_counts, pred_segms, categories, image_id)

    # intersection[i, j]: pixels with ground-truth id gt_ids[i] and predicted id pred_ids[j].
    num_gt, num_pred = len(gt_ids), len(pred_ids)
    intersection = np.bincount(
        gt_index.ravel().astype(np.int64) * num_pred + pred_index.ravel(),
        minlength=num_gt * num_pred,
    ).reshape(num_gt, num_pred)
    gt_row = {label: i for i, label in enumerate(gt_ids.tolist())}
    pred_col = {label: j for j, label in enumerate(pred_ids.tolist())}
    on_void = intersection[gt_row[VOID]] if VOID in gt_row else np.zeros(num_pred, np.int64)

    # Candidate pairs: known non-crowd ground truth x known predictions, both in the PNGs.
    gt_labels = [g for g in gt_row if g in gt_segms and gt_segms[g]["iscrowd"] != 1]
    pred_labels = [p for p in pred_col if p in pred_segms]
    rows = np.array([gt_row[g] for g in gt_labels], dtype=np.int64)
    cols = np.array([pred_col[p] for p in pred_labels], dtype=np.int64)
    pair_inter = intersection[np.ix_(rows, cols)]
    gt_cat = np.array([gt_segms[g]["category_id"] for g in gt_labels])
    pred_cat = np.array([pred_segms[p]["category_id"] for p in pred_labels])
    gt_area = np.array([gt_segms[g]["area"] for g in gt_labels])
    pred_area_arr = np.array([pred_area[p] for p in pred_labels], dtype=np.int64)
    union = pred_area_arr[None, :] + gt_area[:, None] - pair_inter - on_void[cols][None, :]
    candidate = (pair_inter > 0) & (gt_cat[:, None] == pred_cat[None, :])
    iou = np.zeros(pair_inter.shape, dtype=np.float64)
    np.divide(pair_inter, union, out=iou, where=candidate)
    matched = candidate & (iou > _MATCH_IOU)

    stat = PQStat()
    # Row-major order sums IoUs in panopticapi's order (ground-truth id, then predicted id).
    for i, j in zip(*np.nonzero(matched)):
        category = stat[gt_segms[gt_labels[i]]["category_id"]]
        category.tp += 1
        category.iou += float(iou[i, j])
    gt_matched = {gt_labels[i] for i in np.flatnonzero(matched.any(axis=1))}
    pred_matched = {pred_labels[j] for j in np.flatnonzero(matched.any(axis=0))}

    crowd_of_category = {}
    for gt_label, info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if info["iscrowd"] == 1:  # crowd regions are never false negatives
            crowd_of_category[info["category_id"]] = gt_label
            continue
        stat[info["category_id"]].fn += 1

    for pred_label, info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        col = pred_col[pred_label]
        ignored = int(on_void[col])
        crowd = crowd_of_category.get(info["category_id"])
        if crowd is not None and crowd in gt_row:
            ignored += int(intersection[gt_row[crowd], col])
        if ignored / pred_area[pred_label] > _IGNORE_FRACTION:
            continue
        stat[info["category_id"]].fp += 1
    return stat


def read_panoptic_png(path: str) -> np.ndarray:
    """A COCO panoptic PNG -> (H, W) segment ids ``R + 256 G + 256^2 B``."""
    rgb = np.asarray(Image.open(path), dtype=np.uint32)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"panoptic PNG {path} has shape {rgb.shape}; expected (H, W, 3) RGB")
    return rgb2id(rgb[..., :3])


def _pq_stat_of_images(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    gt_folder: str,
    pred_folder: str,
    categories: dict[int, Any],
) -> tuple[PQStat, list[tuple[str, str]]]:
    """The summed statistics of the image pairs, and ``(file, error)`` of every PNG that
    could not be read (that image is skipped)."""
    stat = PQStat()
    failures = FileFailures("images")
    for gt_ann, pred_ann in pairs:
        images = []
        for folder, ann in ((gt_folder, gt_ann), (pred_folder, pred_ann)):
            path = os.path.join(folder, ann["file_name"])
            try:
                images.append(read_panoptic_png(path))
            except FILE_ERRORS as e:
                failures.record(path, e)
                break
        if len(images) < 2:
            continue
        stat += pq_stat_single_image(
            *images,
            gt_ann["segments_info"],
            pred_ann["segments_info"],
            categories,
            image_id=gt_ann["image_id"],
        )
    return stat, failures.failures


def pq_compute(
    gt_json_file: str,
    pred_json_file: str,
    gt_folder: str | None = None,
    pred_folder: str | None = None,
    num_workers: int = 1,
) -> dict[str, Any]:
    """PQ / SQ / RQ of COCO panoptic predictions, as ``panopticapi.evaluation.pq_compute``.

    Args:
        gt_json_file: ground-truth COCO panoptic JSON (``categories``, ``annotations``).
        pred_json_file: predictions in the same format (``annotations`` only are read).
        gt_folder: ground-truth PNGs (default: ``gt_json_file`` without ``.json``).
        pred_folder: predicted PNGs (default: ``pred_json_file`` without ``.json``).
        num_workers: processes to spread the images over (1: this process).

    Returns:
        ``{"All" | "Things" | "Stuff": {"pq", "sq", "rq", "n"}, "per_class": {id: {...}}}``
        with values in [0, 1].

    Raises:
        FilesFailedError: if PNGs could not be read; they are named and their images
            skipped, and the error's ``results`` hold the PQ of the other images.
    """
    start = time.perf_counter()
    with open(gt_json_file) as f:
        gt_json = json.load(f)
    with open(pred_json_file) as f:
        pred_json = json.load(f)
    gt_folder = gt_json_file.replace(".json", "") if gt_folder is None else gt_folder
    pred_folder = pred_json_file.replace(".json", "") if pred_folder is None else pred_folder
    for name, folder in (("ground truth", gt_folder), ("prediction", pred_folder)):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{name} PNG folder {folder} does not exist")
    categories = {c["id"]: c for c in gt_json["categories"]}
    pred_by_image = {ann["image_id"]: ann for ann in pred_json["annotations"]}
    pairs = []
    for gt_ann in gt_json["annotations"]:
        if gt_ann["image_id"] not in pred_by_image:
            raise KeyError(f"{pred_json_file} has no prediction for image {gt_ann['image_id']}")
        pairs.append((gt_ann, pred_by_image[gt_ann["image_id"]]))

    failures = FileFailures("images")
    if num_workers <= 1 or len(pairs) < 2:
        stat, chunk_failures = _pq_stat_of_images(pairs, gt_folder, pred_folder, categories)
        failures.extend(chunk_failures)
    else:
        chunks = [pairs[i::num_workers] for i in range(num_workers)]
        stat = PQStat()
        with ProcessPoolExecutor(num_workers) as pool:
            futures = [
                pool.submit(_pq_stat_of_images, chunk, gt_folder, pred_folder, categories)
                for chunk in chunks
                if chunk
            ]
            for future in futures:
                chunk_stat, chunk_failures = future.result()
                stat += chunk_stat
                failures.extend(chunk_failures)

    results: dict[str, Any] = {}
    for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
        results[name], per_class = stat.pq_average(categories, isthing=isthing)
        if name == "All":
            results["per_class"] = per_class
    logger.info(f"PQ of {len(pairs)} images in {time.perf_counter() - start:.2f} s")
    failures.raise_if_any(len(pairs), results)
    return results
