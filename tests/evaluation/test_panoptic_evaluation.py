import contextlib
import io
import json

import pytest
from eval_fixtures import model_outputs, pred_label_map, segments_from_labels, to_dataset_ids
from PIL import Image

from mask2former.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from tests.optional import require_package


def _pq_compute_by_hand(dataset, tmp_path):
    """panopticapi's own result on prediction files written here, independently."""
    pq_compute = require_package("panopticapi.evaluation", "panopticapi-lite").pq_compute
    from panopticapi.utils import id2rgb

    pred_dir = tmp_path / "hand"
    pred_dir.mkdir()
    ids, segments = segments_from_labels(pred_label_map())
    Image.fromarray(id2rgb(ids)).save(pred_dir / "img1.png")
    gt = json.load(open(dataset["gt_json"]))
    gt["annotations"] = [
        {"image_id": 1, "file_name": "img1.png", "segments_info": to_dataset_ids(segments)}
    ]
    pred_json = tmp_path / "hand.json"
    json.dump(gt, open(pred_json, "w"))
    with contextlib.redirect_stdout(io.StringIO()):
        return pq_compute(
            str(dataset["gt_json"]),
            str(pred_json),
            gt_folder=str(dataset["root"] / "panoptic"),
            pred_folder=str(pred_dir),
        )


def test_pq_equals_panopticapi_and_known_answer(tiny_panoptic, tmp_path):
    out = tmp_path / "out"
    evaluator = COCOPanopticEvaluator(tiny_panoptic["name"], str(out))
    evaluator.reset()
    evaluator.process([tiny_panoptic["record"]], [model_outputs()])
    res = evaluator.evaluate()["panoptic_seg"]

    # Every segment matches (IoU > 0.5): RQ = 1 and PQ = SQ = mean IoU.
    box, ball, sky = 1.0, 30 / 42, 178 / 190
    assert res["PQ"] == pytest.approx(100 * (box + ball + sky) / 3)
    assert res["PQ_th"] == pytest.approx(100 * (box + ball) / 2)
    assert res["PQ_st"] == pytest.approx(100 * sky)
    assert res["RQ"] == pytest.approx(100.0)
    assert (out / "predictions.json").exists() and (out / "panoptic_seg" / "img1.png").exists()

    reference = _pq_compute_by_hand(tiny_panoptic, tmp_path)
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            assert res[f"{key.upper()}{suffix}"] == pytest.approx(100 * reference[group][key])
