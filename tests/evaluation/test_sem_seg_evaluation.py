import json

import numpy as np
import pytest
from eval_fixtures import model_outputs

from mask2former.evaluation.sem_seg_evaluation import SemSegEvaluator, confusion_matrix


def test_semseg_metrics_known_answer(tiny_panoptic, tmp_path):
    evaluator = SemSegEvaluator(tiny_panoptic["name"], output_dir=str(tmp_path / "out"))
    evaluator.reset()
    evaluator.process([tiny_panoptic["record"]], [model_outputs()])
    res = evaluator.evaluate()["sem_seg"]

    # Ground truth: box 36 px, ball 36 px, sky 184 px minus one ignored pixel (predicted sky).
    iou = np.array([1.0, 30 / 42, 177 / 189])
    acc = np.array([1.0, 30 / 36, 177 / 183])
    gt_pixels = np.array([36, 36, 183])
    assert res["mIoU"] == pytest.approx(100 * iou.mean())
    assert res["fwIoU"] == pytest.approx(100 * (iou * gt_pixels / gt_pixels.sum()).sum())
    assert res["mACC"] == pytest.approx(100 * acc.mean())
    assert res["pACC"] == pytest.approx(100 * (36 + 30 + 177) / 255)
    assert res["IoU-ball"] == pytest.approx(100 * 30 / 42)
    assert res["ACC-sky"] == pytest.approx(100 * 177 / 183)

    records = json.load(open(tmp_path / "out" / "sem_seg_predictions.json"))
    assert sorted(r["category_id"] for r in records) == [1, 2, 3]  # dataset ids


def test_class_absent_from_ground_truth_is_nan_and_not_averaged():
    pred = np.array([[0, 1], [1, 1]])
    gt = np.array([[0, 0], [0, 0]])
    matrix = confusion_matrix(pred, gt, num_classes=2, ignore_label=255)
    assert matrix[:-1, :-1].tolist() == [[1, 0], [3, 0]]  # rows: prediction, cols: gt

    from mask2former.evaluation.sem_seg_evaluation import metrics_from_confusion

    res = metrics_from_confusion(matrix, ["a", "b"])
    assert res["mIoU"] == pytest.approx(25.0)
    assert np.isnan(res["IoU-b"])


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((3, 2), int), 2, 255)
