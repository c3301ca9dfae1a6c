"""Semantic segmentation metrics: mIoU, fwIoU, mACC, pACC and per-class IoU / accuracy."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.evaluation.evaluator import DatasetEvaluator
from mask2former.utils import comm
from mask2former.utils.file_failures import FILE_ERRORS, FileFailures

logger = logging.getLogger(__name__)


def load_sem_seg(path: str) -> np.ndarray:
    """(H, W) int64 label map of a semantic PNG."""
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int64)


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_label: int
) -> np.ndarray:
    """Counts of (predicted, ground-truth) label pairs.

    Args:
        pred: (H, W) predicted labels in [0, num_classes).
        gt: (H, W) ground-truth labels; ``ignore_label`` pixels go to the extra last column.

    Returns:
        (num_classes + 1, num_classes + 1) int64 matrix, rows = prediction, cols = gt.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    gt = np.where(gt == ignore_label, num_classes, gt)
    size = num_classes + 1
    counts = np.bincount(size * pred.reshape(-1) + gt.reshape(-1), minlength=size * size)
    return counts.reshape(size, size)


def metrics_from_confusion(conf_matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """mIoU, fwIoU, mACC, pACC and per-class ``IoU-{name}`` / ``ACC-{name}`` (percent).

    Classes absent from the ground truth are NaN and left out of the means (as detectron2).
    """
    num_classes = len(class_names)
    acc = np.full(num_classes, np.nan, dtype=float)
    iou = np.full(num_classes, np.nan, dtype=float)
    tp = conf_matrix.diagonal()[:-1].astype(float)
    pos_gt = conf_matrix[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = conf_matrix[:-1, :-1].sum(axis=1).astype(float)
    class_weights = pos_gt / pos_gt.sum()
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]

    res: dict[str, float] = {}
    res["mIoU"] = 100 * np.sum(iou[iou_valid]) / np.sum(iou_valid)
    res["fwIoU"] = 100 * np.sum(iou[iou_valid] * class_weights[iou_valid])
    for i, name in enumerate(class_names):
        res[f"IoU-{name}"] = 100 * iou[i]
    res["mACC"] = 100 * np.sum(acc[acc_valid]) / np.sum(acc_valid)
    res["pACC"] = 100 * np.sum(tp) / np.sum(pos_gt)
    for i, name in enumerate(class_names):
        res[f"ACC-{name}"] = 100 * acc[i]
    return {k: float(v) for k, v in res.items()}


class SemSegEvaluator(DatasetEvaluator):
    """Semantic segmentation evaluator over the ``stuff_classes`` of a dataset.

    Reads the ground truth from each record's ``sem_seg_file_name``; predictions are the
    ``"sem_seg"`` (C, H, W) scores of the model outputs (argmax over C).

    Args:
        dataset_name: registered dataset (metadata: ``stuff_classes``, ``ignore_label``).
        distributed: gather the confusion matrices of all ranks.
        output_dir: where to write ``sem_seg_predictions.json`` (RLE per class per image).
    """

    def __init__(self, dataset_name: str, distributed: bool = True, output_dir: str | None = None):
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        meta = MetadataCatalog.get(dataset_name)
        self._class_names = list(meta.stuff_classes)
        self._num_classes = len(self._class_names)
        self._ignore_label = meta.get("ignore_label", 255)
        c2d = meta.get("stuff_dataset_id_to_contiguous_id")
        self._contiguous_to_dataset_id = {v: k for k, v in c2d.items()} if c2d else None
        self._gt_files = {
            record["file_name"]: record["sem_seg_file_name"]
            for record in DatasetCatalog.get(dataset_name)
            if "sem_seg_file_name" in record
        }
        if not self._gt_files:
            raise ValueError(
                f"SemSegEvaluator: no record of dataset {dataset_name!r} has 'sem_seg_file_name'"
            )

    def reset(self) -> None:
        size = self._num_classes + 1
        self._conf_matrix = np.zeros((size, size), dtype=np.int64)
        self._predictions: list[dict[str, Any]] = []
        # A ground-truth file that cannot be read is skipped (named in the log) and counted:
        # evaluate() reports the metrics of the other images, then raises with the count.
        self._failures = FileFailures("ground-truth files")
        self._num_images = 0

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            pred = out["sem_seg"].argmax(dim=0).cpu().numpy().astype(np.int64)
            try:
                gt_file = self._gt_files[inp["file_name"]]
            except KeyError as e:
                raise KeyError(
                    f"SemSegEvaluator: {inp['file_name']!r} has no sem_seg_file_name in "
                    f"dataset {self._dataset_name!r}"
                ) from e
            self._num_images += 1
            try:
                gt = load_sem_seg(gt_file)
            except FILE_ERRORS as e:
                self._failures.record(gt_file, e)
                continue
            self._conf_matrix += confusion_matrix(pred, gt, self._num_classes, self._ignore_label)
            if self._output_dir:
                self._predictions.extend(self._encode_json(pred, inp["file_name"]))

    def evaluate(self) -> dict[str, Any] | None:
        """The metrics over the images whose ground truth could be read.

        Raises:
            FilesFailedError: after logging and writing the metrics of the other images, if
                ground-truth files could not be read (their names, the count; the metrics in
                its ``results``).
        """
        conf_matrix = self._conf_matrix
        predictions = self._predictions
        failures, num_images = self._failures.failures, self._num_images
        if self._distributed:
            comm.synchronize()
            conf_matrix = np.sum(comm.all_gather(conf_matrix), axis=0)
            predictions = list(itertools.chain(*comm.all_gather(predictions)))
            gathered = comm.all_gather((failures, num_images))
            if not comm.is_main_process():
                return None
            failures = [failure for rank_failures, _ in gathered for failure in rank_failures]
            num_images = sum(count for _, count in gathered)
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                json.dump(predictions, f)
        res = metrics_from_confusion(conf_matrix, self._class_names)
        logger.info(
            f"Semantic segmentation on {self._dataset_name}: mIoU {res['mIoU']:.3f}, "
            f"fwIoU {res['fwIoU']:.3f}, mACC {res['mACC']:.3f}, pACC {res['pACC']:.3f}"
        )
        results = OrderedDict({"sem_seg": res})
        report = FileFailures(self._failures.what)
        report.extend(failures)
        report.raise_if_any(num_images, results)
        return results

    def _encode_json(self, sem_seg: np.ndarray, file_name: str) -> list[dict[str, Any]]:
        """COCO-stuff result records: one RLE per predicted class."""
        records = []
        for label in np.unique(sem_seg):
            label = int(label)
            category_id = label
            if self._contiguous_to_dataset_id is not None:
                category_id = self._contiguous_to_dataset_id[label]
            rle = mask_util.encode(np.asfortranarray((sem_seg == label).astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("utf-8")
            records.append(
                {"file_name": file_name, "category_id": category_id, "segmentation": rle}
            )
        return records
