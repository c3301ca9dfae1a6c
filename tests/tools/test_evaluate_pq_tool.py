"""tools/evaluate_pq_for_semantic_segmentation.py and ``evaluate_sem_seg_json``."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.evaluation.coco_format import encode_mask
from mask2former.evaluation.semantic_pq import evaluate_sem_seg_json
from tests.cli_helpers import run_cli


def _record(file_name: str, mask: np.ndarray, category_id: int) -> dict:
    return {"file_name": file_name, "category_id": category_id, "segmentation": encode_mask(mask)}


def test_known_answer_with_id_mapping_and_uncovered_pixels(tmp_path):
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 0, 1, 1], [255, 0, 1, 1]], np.uint8)
    Image.fromarray(gt).save(tmp_path / "img.png")
    covered = np.zeros((4, 4), bool)
    covered[:, 1:] = True  # class "b" (dataset id 20) on columns 1..3
    predictions = [_record("images/img.jpg", covered, 20)]
    results = evaluate_sem_seg_json(
        predictions, {"img": str(tmp_path / "img.png")}, ["a", "b"], 255, {10: 0, 20: 1}
    )
    # Column 0 is uncovered -> class "a" (4 px: 2 gt "a", 2 void); gt "a" has 6 px.
    # a: union 4 + 6 - 2 - 2 (void) = 6, IoU 1/3 -> FN + FP (void is only half). PQ 0.
    # b: pred 12 px, gt 8 px, intersection 8, void-in-pred 0 -> IoU 8/12 > 0.5 -> TP.
    assert results["per_class"]["a"]["pq"] == 0
    assert results["per_class"]["b"]["pq"] == pytest.approx(100 * 8 / 12)
    assert results["PQ"] == pytest.approx(50 * 8 / 12)
    # IoU over non-void gt pixels: a = 2 / (6 + 2 - 2), b = 8 / (8 + 12 - 8)
    assert results["mIoU"] == pytest.approx(100 * (2 / 6 + 8 / 12) / 2)
    with pytest.raises(KeyError, match="category_id 30"):
        evaluate_sem_seg_json(
            [_record("img.png", covered, 30)], {"img": str(tmp_path / "img.png")}, ["a", "b"],
            255, {10: 0, 20: 1},
        )  # fmt: skip


def test_cli_on_demo_dataset_perfect_predictions(tmp_path):
    root = tmp_path / "datasets"
    generate_demo_dataset(str(root / "demo_shapes"), num_train=1, num_val=3)
    predictions = []
    for gt_file in sorted((root / "demo_shapes" / "sem_seg_val").glob("*.png")):
        gt = np.asarray(Image.open(gt_file))
        for label in np.unique(gt):
            if label != 255:  # contiguous id -> dataset id (demo: id + 1)
                predictions.append(_record(gt_file.name, gt == label, int(label) + 1))
    json_file = tmp_path / "sem_seg_predictions.json"
    json_file.write_text(json.dumps(predictions))
    out = run_cli(
        "tools/evaluate_pq_for_semantic_segmentation.py",
        ["--dataset-name", "demo_shapes_val_sem_seg", "--json-file", str(json_file)],
        DETECTRON2_DATASETS=str(root),
    )
    assert "3 images" in out
    assert re.search(r"All\s+\|\s+100\.0\s+100\.0\s+100\.0\s+5", out), out[-2000:]
    assert "mIoU: 100.00" in out
