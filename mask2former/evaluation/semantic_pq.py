"""Panoptic quality of semantic segmentation: every class present in an image is one segment.

Used by ``tools/evaluate_pq_for_semantic_segmentation.py`` (the original's tool of the same
name) to report PQ/SQ/RQ for semantic-only datasets such as ADE20K-150 and COCO-Stuff-10k.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

from mask2former.evaluation.pq import PQStat
from mask2former.utils.file_failures import FILE_ERRORS, FileFailures

# Segment ids of a (gt, pred) pair are packed into one integer as panopticapi does.
_OFFSET = 256 * 256 * 256


def pq_stat_single_image(
    gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_label: int
) -> PQStat:
    """Accumulate PQ statistics of one image.

    Args:
        gt: (H, W) int map of contiguous class ids, ``ignore_label`` = void.
        pred: (H, W) int map of predicted class ids in [0, num_classes).
        num_classes: number of classes.
        ignore_label: void label in ``gt``.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} and pred shape {pred.shape} differ")
    stat = PQStat()
    gt = gt.astype(np.int64)
    pred = pred.astype(np.int64)
    gt_ids, gt_areas = np.unique(gt, return_counts=True)
    gt_area = {int(i): int(a) for i, a in zip(gt_ids, gt_areas) if i != ignore_label}
    pred_ids, pred_areas = np.unique(pred, return_counts=True)
    pred_area = {int(i): int(a) for i, a in zip(pred_ids, pred_areas)}
    for label in pred_area:
        if not 0 <= label < num_classes:
            raise ValueError(f"predicted class id {label} outside [0, {num_classes})")

    joint = gt.astype(np.uint64) * _OFFSET + pred.astype(np.uint64)
    joint_ids, intersections = np.unique(joint, return_counts=True)
    overlap = {
        (int(j // _OFFSET), int(j % _OFFSET)): int(n) for j, n in zip(joint_ids, intersections)
    }

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in overlap.items():
        # A segment's id is its class, so only same-class pairs can match.
        if gt_label != pred_label or gt_label not in gt_area:
            continue
        void_in_pred = overlap.get((ignore_label, pred_label), 0)
        union = pred_area[pred_label] + gt_area[gt_label] - intersection - void_in_pred
        iou = intersection / union
        if iou > 0.5:
            stat[gt_label].tp += 1
            stat[gt_label].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    for gt_label in gt_area:
        if gt_label not in gt_matched:
            stat[gt_label].fn += 1
    for pred_label, area in pred_area.items():
        if pred_label in pred_matched:
            continue
        # A prediction lying mostly on void pixels is not counted as a false positive.
        if overlap.get((ignore_label, pred_label), 0) / area > 0.5:
            continue
        stat[pred_label].fp += 1
    return stat


def summarize_pq(stat: PQStat, class_names: list[str]) -> dict:
    """PQ/SQ/RQ (in %) over all classes (all are stuff here) plus per-class values."""
    categories = {i: {"id": i, "name": name, "isthing": 0} for i, name in enumerate(class_names)}
    results, per_class = stat.pq_average(categories, isthing=None)
    return {
        "PQ": 100 * results["pq"],
        "SQ": 100 * results["sq"],
        "RQ": 100 * results["rq"],
        "N": results["n"],
        "per_class": {
            class_names[k]: {m: 100 * v[m] for m in ("pq", "sq", "rq")}
            for k, v in per_class.items()
        },
    }


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_label: int):
    """(K+1, K+1) counts indexed [pred, gt]; the last row/column collects void pixels."""
    gt = gt.astype(np.int64).copy()
    gt[gt == ignore_label] = num_classes
    index = (num_classes + 1) * pred.astype(np.int64).reshape(-1) + gt.reshape(-1)
    size = (num_classes + 1) ** 2
    return np.bincount(index, minlength=size).reshape(num_classes + 1, num_classes + 1)


def miou_from_confusion(conf: np.ndarray) -> float:
    """Mean IoU (in %) over classes present in the ground truth or the prediction."""
    tp = conf.diagonal()[:-1].astype(np.float64)
    pos_gt = conf[:-1, :-1].sum(0).astype(np.float64)
    pos_pred = conf[:-1, :-1].sum(1).astype(np.float64)
    union = pos_gt + pos_pred - tp
    valid = union > 0
    return float(100 * (tp[valid] / union[valid]).mean()) if valid.any() else float("nan")


def evaluate_sem_seg_json(
    predictions: list[dict],
    gt_files: dict[str, str],
    class_names: list[str],
    ignore_label: int,
    dataset_id_to_contiguous_id: dict[int, int] | None = None,
) -> dict:
    """PQ/SQ/RQ and mIoU of ``SemSegEvaluator``'s ``sem_seg_predictions.json``.

    Pixels that no prediction covers count as class 0, as in the original tool.

    Args:
        predictions: records ``{"file_name", "category_id", "segmentation" (COCO RLE)}``.
        gt_files: image file stem -> ground-truth PNG of contiguous ids (``ignore_label`` void).
        class_names: the ``stuff_classes``.
        ignore_label: void label of the ground truth.
        dataset_id_to_contiguous_id: maps the JSON's category ids back to contiguous ids.

    Returns:
        ``summarize_pq`` results plus "mIoU" (in %) and "num_images".

    Raises:
        FilesFailedError: if ground-truth PNGs could not be read; they are named and
            skipped, and the error's ``results`` hold the metrics of the other images.
    """
    per_image: dict[str, list[dict]] = defaultdict(list)
    for pred in predictions:
        per_image[os.path.splitext(os.path.basename(pred["file_name"]))[0]].append(pred)
    num_classes = len(class_names)
    stat = PQStat()
    conf = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    failures = FileFailures("ground-truth PNGs")
    for stem, preds in per_image.items():
        if stem not in gt_files:
            raise KeyError(f"prediction for image {stem!r} has no ground truth in the dataset")
        try:
            with Image.open(gt_files[stem]) as gt_image:
                gt = np.asarray(gt_image).astype(np.int64)
        except FILE_ERRORS as e:
            failures.record(gt_files[stem], e)
            continue
        pred_map = np.zeros_like(gt)
        for pred in preds:
            category = int(pred["category_id"])
            if dataset_id_to_contiguous_id is not None:
                if category not in dataset_id_to_contiguous_id:
                    raise KeyError(
                        f"image {stem!r}: category_id {category} is not in the dataset's "
                        "stuff_dataset_id_to_contiguous_id"
                    )
                category = dataset_id_to_contiguous_id[category]
            rle = dict(pred["segmentation"])
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
            mask = mask_util.decode(rle).astype(bool)
            if mask.shape != gt.shape:
                raise ValueError(
                    f"image {stem!r}: predicted mask {mask.shape} and ground truth {gt.shape} "
                    "differ in size"
                )
            pred_map[mask] = category
        stat += pq_stat_single_image(gt, pred_map, num_classes, ignore_label)
        conf += confusion_matrix(gt, pred_map, num_classes, ignore_label)
    results = summarize_pq(stat, list(class_names))
    results["mIoU"] = miou_from_confusion(conf)
    results["num_images"] = len(per_image) - len(failures.failures)
    failures.raise_if_any(len(per_image), results)
    return results
