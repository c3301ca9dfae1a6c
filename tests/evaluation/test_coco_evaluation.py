import math

import pytest
from eval_fixtures import model_outputs

from mask2former.evaluation.coco_evaluation import COCOEvaluator


def _evaluate(dataset, tmp_path, ball_class):
    evaluator = COCOEvaluator(dataset["name"], tasks=("segm",), output_dir=str(tmp_path / "o"))
    evaluator.reset()
    evaluator.process([dataset["record"]], [model_outputs(ball_class=ball_class)])
    return evaluator.evaluate()["segm"]


def test_segm_ap_known_answer(tiny_panoptic, tmp_path):
    # Ground truth converted from the panoptic PNG; the ball mask has IoU 30/42 = 0.714, so
    # it matches at IoU thresholds 0.50..0.70 (5 of 10): AP(ball) = 50, AP(box) = 100.
    res = _evaluate(tiny_panoptic, tmp_path, ball_class=1)
    assert res["AP"] == pytest.approx(75.0)
    assert res["AP50"] == pytest.approx(100.0)
    assert res["AP75"] == pytest.approx(50.0)
    assert res["APs"] == pytest.approx(75.0)  # both objects are small (36 px)
    assert math.isnan(res["APm"]) and math.isnan(res["APl"])
    assert res["AP-box"] == pytest.approx(100.0)
    assert res["AP-ball"] == pytest.approx(50.0)
    assert (tmp_path / "o" / "coco_instances_results.json").exists()


def test_wrong_class_costs_the_class(tiny_panoptic, tmp_path):
    # The ball predicted as a second (lower-scored) box: box AP stays 100, ball AP is 0.
    res = _evaluate(tiny_panoptic, tmp_path, ball_class=0)
    assert res["AP-box"] == pytest.approx(100.0)
    assert res["AP-ball"] == pytest.approx(0.0)
    assert res["AP"] == pytest.approx(50.0)
