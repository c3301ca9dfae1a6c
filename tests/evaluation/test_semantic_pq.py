import numpy as np
import pytest

from mask2former.evaluation.semantic_pq import (
    confusion_matrix,
    miou_from_confusion,
    pq_stat_single_image,
    summarize_pq,
)


def test_perfect_prediction_gives_100():
    gt = np.zeros((10, 10), np.int64)
    gt[:, 5:] = 1
    stat = pq_stat_single_image(gt, gt.copy(), 2, 255)
    res = summarize_pq(stat, ["a", "b"])
    assert res["PQ"] == pytest.approx(100.0) and res["N"] == 2


def test_known_answer_with_void_and_fp():
    gt = np.zeros((10, 10), np.int64)  # class 0 everywhere (100 px)
    gt[:, :2] = 255  # 20 void pixels -> class 0 has 80 px
    pred = np.zeros((10, 10), np.int64)
    pred[:, 8:] = 1  # 20 px of class 1, not in gt -> a false positive
    stat = pq_stat_single_image(gt, pred, 2, 255)
    # class 0: pred area 80 (incl. 20 void px), gt 80, intersection 60, void-in-pred 20
    # union = 80 + 80 - 60 - 20 = 80, iou = 0.75 -> tp
    assert stat[0].tp == 1 and stat[0].iou == pytest.approx(0.75)
    assert stat[1].fp == 1 and stat[1].tp == 0
    res = summarize_pq(stat, ["a", "b"])
    # class 0: PQ = 0.75; class 1: PQ 0 -> mean 37.5
    assert res["PQ"] == pytest.approx(37.5)


def test_miou_known_answer():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    conf = confusion_matrix(gt, pred, 2, 255)
    # class 0: tp 1, union 2 -> 0.5; class 1: tp 2, union 3 -> 2/3
    assert miou_from_confusion(conf) == pytest.approx(100 * (0.5 + 2 / 3) / 2)


def test_bad_prediction_label():
    with pytest.raises(ValueError, match="outside"):
        pq_stat_single_image(np.zeros((2, 2)), np.full((2, 2), 5), 2, 255)
