"""Tools that process many files report a bad file by name, go on with the others, and exit
non-zero with the count (issue 12, item 1): dataset preparation scripts and evaluation."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.data import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.demo import demo_metadata
from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.evaluation.coco_format import encode_mask
from mask2former.evaluation.pq import pq_compute
from mask2former.evaluation.sem_seg_evaluation import SemSegEvaluator
from mask2former.utils.file_failures import FilesFailedError
from tests.cli_helpers import REPO_ROOT, cli_env, start_cli

DATASETS_DIR = Path(REPO_ROOT) / "datasets"
H, W = 12, 16


def _ade_tree(root: Path, stems: list[str], corrupt: str) -> Path:
    """A miniature ADEChallengeData2016 training split; ``corrupt``'s semantic PNG is cut
    short (a real truncated file); validation holds one good image."""
    ade = root / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for split, split_stems in (("training", stems), ("validation", ["val_1"])):
        for sub in ("images", "annotations", "annotations_instance"):
            (ade / sub / split).mkdir(parents=True, exist_ok=True)
        for stem in split_stems:
            image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            Image.fromarray(image).save(ade / "images" / split / f"{stem}.jpg")
            semantic = np.full((H, W), 1, dtype=np.uint8)  # wall
            Image.fromarray(semantic).save(ade / "annotations" / split / f"{stem}.png")
            instance = np.zeros((H, W, 3), dtype=np.uint8)
            Image.fromarray(instance).save(ade / "annotations_instance" / split / f"{stem}.png")
    bad = ade / "annotations" / "training" / f"{corrupt}.png"
    bad.write_bytes(bad.read_bytes()[:40])
    return ade


def test_prepare_script_cli_skips_a_corrupt_png_and_exits_with_the_count(tmp_path):
    ade = _ade_tree(tmp_path, ["a", "b", "c"], corrupt="b")
    process = subprocess.run(
        [sys.executable, str(DATASETS_DIR / "prepare_ade20k_sem_seg.py"), "--root", str(tmp_path)]
        + ["--workers", "2"],
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    last_line = process.stderr.strip().splitlines()[-1]
    assert process.returncode == 1, process.stderr[-2000:]
    bad = str(ade / "annotations" / "training" / "b.png")
    assert last_line.startswith("Error: 1 of 4 label files failed and were skipped"), last_line
    assert bad in last_line, last_line
    assert f"Skipping {bad}" in process.stderr  # reported when it happened
    written = sorted(p.name for p in (ade / "annotations_detectron2" / "training").iterdir())
    assert written == ["a.png", "c.png"]
    assert (ade / "annotations_detectron2" / "validation" / "val_1.png").is_file()


@pytest.fixture(scope="module")
def panoptic_script():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(DATASETS_DIR))
        return importlib.import_module("prepare_ade20k_pan_seg")


def test_panoptic_json_keeps_the_good_images(tmp_path, panoptic_script):
    ade = _ade_tree(tmp_path, ["a", "b", "c"], corrupt="a")
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as info:
        panoptic_script.main(["--root", str(tmp_path), "--workers", "1"])
    message = str(info.value.code)
    assert message.startswith("Error: 1 of 4 images failed and were skipped"), message
    # The image is the work item; the label PNG is the file that could not be read.
    assert str(ade / "images" / "training" / "a.jpg") in message, message
    assert f"{ade / 'annotations' / 'training' / 'a.png'}: cannot read the label PNG" in message
    train = json.loads((ade / "ade20k_panoptic_train.json").read_text())
    assert [image["id"] for image in train["images"]] == ["b", "c"]
    assert sorted(os.listdir(ade / "ade20k_panoptic_train")) == ["b.png", "c.png"]
    assert len(json.loads((ade / "ade20k_panoptic_val.json").read_text())["images"]) == 1


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


@pytest.fixture()
def demo_val(tmp_path) -> Path:
    """The demo dataset with 3 validation images (semantic and panoptic ground truth)."""
    root = tmp_path / "datasets"
    generate_demo_dataset(str(root / "demo_shapes"), num_train=1, num_val=3)
    return root


def test_semantic_pq_tool_reports_the_other_images_then_fails_with_the_count(demo_val, tmp_path):
    gt_dir = demo_val / "demo_shapes" / "sem_seg_val"
    predictions = []  # perfect predictions, in the JSON the SemSegEvaluator writes
    for gt_file in sorted(gt_dir.glob("*.png")):
        gt = np.asarray(Image.open(gt_file))
        for label in np.unique(gt[gt != 255]):  # contiguous id -> dataset id (demo: id + 1)
            mask = gt == label
            predictions.append(
                {
                    "file_name": gt_file.name,
                    "category_id": int(label) + 1,
                    "segmentation": encode_mask(mask),
                }
            )
    json_file = tmp_path / "sem_seg_predictions.json"
    json_file.write_text(json.dumps(predictions))
    bad = gt_dir / "000001.png"
    _truncate(bad)
    process = start_cli(
        "tools/evaluate_pq_for_semantic_segmentation.py",
        ["--dataset-name", "demo_shapes_val_sem_seg", "--json-file", str(json_file)],
        DETECTRON2_DATASETS=str(demo_val),
    )
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output[-2000:]
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith("Error: 1 of 3 ground-truth PNGs failed and were skipped"), output
    assert str(bad) in last_line, last_line
    assert "2 images" in output and "mIoU: 100.00" in output, output[-2000:]


def test_sem_seg_evaluator_skips_an_unreadable_ground_truth(demo_val):
    gt_dir = demo_val / "demo_shapes" / "sem_seg_val"
    records = [
        {"file_name": f"image_{f.stem}.png", "sem_seg_file_name": str(f)}
        for f in sorted(gt_dir.glob("*.png"))
    ]
    outputs = []
    for record in records:  # perfect predictions: one-hot scores of the ground truth
        gt = torch.from_numpy(np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64))
        scores = torch.nn.functional.one_hot(gt.where(gt != 255, 0), num_classes=5)
        outputs.append({"sem_seg": scores.permute(2, 0, 1).float()})
    _truncate(Path(records[2]["sem_seg_file_name"]))
    name = f"many_files_sem_seg_{id(records)}"
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(ignore_label=255, **demo_metadata())
    try:
        evaluator = SemSegEvaluator(name, distributed=False)
        evaluator.reset()
        for record, output in zip(records, outputs):
            evaluator.process([record], [output])
        with pytest.raises(FilesFailedError) as info:
            evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    message = str(info.value)
    assert message.startswith("1 of 3 ground-truth files failed and were skipped"), message
    assert records[2]["sem_seg_file_name"] in message, message
    assert info.value.results["sem_seg"]["mIoU"] == pytest.approx(100.0)


def test_pq_compute_skips_an_unreadable_png(demo_val, tmp_path):
    demo = demo_val / "demo_shapes"
    gt_json = str(demo / "annotations" / "panoptic_val.json")
    pred_dir = tmp_path / "predictions"
    pred_dir.mkdir()
    for png in (demo / "panoptic_val").iterdir():  # perfect predictions
        (pred_dir / png.name).write_bytes(png.read_bytes())
    bad = pred_dir / "000002.png"
    _truncate(bad)
    with pytest.raises(FilesFailedError) as info:
        pq_compute(gt_json, gt_json, str(demo / "panoptic_val"), str(pred_dir))
    message = str(info.value)
    assert message.startswith("1 of 3 images failed and were skipped"), message
    assert str(bad) in message, message
    assert info.value.results["All"]["pq"] == pytest.approx(1.0)
