"""Our PQ (mask2former.evaluation.pq) against panopticapi's pq_compute: answers recorded from
it (always run) and a live comparison on generated prediction sets (when it is installed)."""

import base64
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pq_cases import CATEGORIES, write_case

from mask2former.evaluation.pq import PQStat, pq_compute, pq_stat_single_image
from tests.optional import require_package

KNOWN_ANSWERS = Path(__file__).with_name("pq_known_answers.json")
GROUPS = ("All", "Things", "Stuff")


def assert_same_results(ours, reference, tol=1e-9):
    for group in GROUPS:
        assert ours[group]["n"] == reference[group]["n"], group
        for key in ("pq", "sq", "rq"):
            assert abs(ours[group][key] - reference[group][key]) <= tol, (group, key)
    per_class = {int(k): v for k, v in reference["per_class"].items()}
    assert set(ours["per_class"]) == set(per_class)
    for category, values in per_class.items():
        for key in ("pq", "sq", "rq"):
            assert abs(ours["per_class"][category][key] - values[key]) <= tol, (category, key)


def _write_recorded_case(case, root):
    for folder in ("gt", "pred"):
        (root / folder).mkdir(parents=True)
        for name, data in case[f"{folder}_pngs"].items():
            (root / folder / name).write_bytes(base64.b64decode(data))
        (root / f"{folder}.json").write_text(json.dumps(case[f"{folder}_json"]))
    return [str(root / "gt.json"), str(root / "pred.json"), str(root / "gt"), str(root / "pred")]


def test_equals_answers_recorded_from_panopticapi(tmp_path):
    cases = json.loads(KNOWN_ANSWERS.read_text())["cases"]
    assert len(cases) >= 10
    for case in cases:
        args = _write_recorded_case(case, tmp_path / str(case["seed"]))
        assert_same_results(pq_compute(*args), case["expected"])


def test_equals_panopticapi_on_generated_prediction_sets(tmp_path):
    panopticapi_eval = require_package("panopticapi.evaluation", "panopticapi-lite")
    for seed in range(40):
        paths = write_case(tmp_path / str(seed), seed)
        args = [paths[k] for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")]
        with contextlib.redirect_stdout(io.StringIO()):
            reference = panopticapi_eval.pq_compute(*args)
        assert_same_results(pq_compute(*args), reference)


def test_workers_give_the_single_process_answer(tmp_path):
    paths = write_case(tmp_path, seed=7, num_images=6)
    args = [paths[k] for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")]
    assert_same_results(pq_compute(*args, num_workers=2), pq_compute(*args, num_workers=1))


CATS = {c["id"]: c for c in CATEGORIES}  # 1 is a thing, 10 is stuff


def _stat(gt, pred, gt_segments, pred_segments):
    return pq_stat_single_image(np.array(gt), np.array(pred), gt_segments, pred_segments, CATS)


def test_union_leaves_out_void_and_crowd_is_never_a_false_negative():
    # gt: segment 5 (thing 1) on 4 pixels, 2 void pixels; pred 7 covers all 6.
    gt = [[5, 5, 5, 5, 0, 0]]
    pred = [[7, 7, 7, 7, 7, 7]]
    stat = _stat(
        gt,
        pred,
        [{"id": 5, "category_id": 1, "area": 4, "iscrowd": 0}],
        [{"id": 7, "category_id": 1}],
    )
    assert (stat[1].tp, stat[1].fp, stat[1].fn, stat[1].iou) == (1, 0, 0, 1.0)

    crowd = [{"id": 5, "category_id": 1, "area": 4, "iscrowd": 1}]
    stat = _stat(gt, pred, crowd, [{"id": 7, "category_id": 1}])
    # Unmatched (crowd never matches), but all of it lies on void + crowd: no FP, no FN.
    assert (stat[1].tp, stat[1].fp, stat[1].fn) == (0, 0, 0)
    stat = _stat(gt, pred, crowd, [{"id": 7, "category_id": 10}])
    # Crowd of another category does not excuse it: 2 of 6 pixels on void -> FP.
    assert (stat[10].fp, stat[1].fn) == (1, 0)


def test_iou_of_exactly_half_is_no_match():
    gt = [[5, 5, 6, 6]]
    pred = [[7, 7, 7, 7]]
    segments = [
        {"id": 5, "category_id": 1, "area": 2, "iscrowd": 0},
        {"id": 6, "category_id": 10, "area": 2, "iscrowd": 0},
    ]
    stat = _stat(gt, pred, segments, [{"id": 7, "category_id": 1}])
    assert (stat[1].tp, stat[1].fp, stat[1].fn, stat[10].fn) == (0, 1, 1, 1)


@pytest.mark.parametrize(
    "pred_segments, message",
    [
        ([], "in the prediction PNG but not in its segments_info"),
        ([{"id": 7, "category_id": 1}, {"id": 8, "category_id": 1}], "not in the prediction PNG"),
        ([{"id": 7, "category_id": 4}], "category_id 4"),
    ],
)
def test_inconsistent_predictions_are_refused(pred_segments, message):
    with pytest.raises(KeyError, match=message):
        _stat([[5]], [[7]], [{"id": 5, "category_id": 1, "area": 1, "iscrowd": 0}], pred_segments)


def test_group_without_categories_reports_zero():
    stat = PQStat()
    stat[1].tp, stat[1].iou = 1, 0.75
    results, per_class = stat.pq_average({1: {"isthing": 1}, 10: {"isthing": 0}}, isthing=False)
    assert results == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
    assert per_class == {10: {"pq": 0.0, "sq": 0.0, "rq": 0.0}}
