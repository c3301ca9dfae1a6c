"""Demo dataset: determinism, official readers (pycocotools, panopticapi), registration."""

import contextlib
import filecmp
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from mask2former.data import DatasetCatalog, MetadataCatalog, register_demo
from mask2former.data.datasets.demo_files import generate_demo_dataset, main
from mask2former.utils.panoptic_ids import rgb2id
from tests.optional import require_package


def _all_files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def test_regeneration_is_byte_identical(demo_root, tmp_path):
    other = generate_demo_dataset(str(tmp_path / "again"), 8, 4)
    files = _all_files(demo_root)
    assert files == _all_files(other)
    match, mismatch, errors = filecmp.cmpfiles(demo_root, other, files, shallow=False)
    assert mismatch == [] and errors == []


def test_cli_writes_layout(tmp_path, capsys):
    main(["--output", str(tmp_path / "cli"), "--num-train", "2", "--num-val", "1"])
    root = tmp_path / "cli"
    for rel in (
        "images/train/000001.png",
        "images/val/000000.png",
        "panoptic_train/000001.png",
        "sem_seg_val/000000.png",
        "annotations/instances_train.json",
        "annotations/panoptic_val.json",
    ):
        assert (root / rel).is_file(), rel
    assert "demo dataset written" in capsys.readouterr().out


def test_pycocotools_reads_instances_and_evaluates_gt_perfectly(demo_root):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(demo_root, "annotations", "instances_val.json"))
        dets = [dict(a, score=1.0) for a in gt.loadAnns(gt.getAnnIds())]
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert len(gt.getImgIds()) == 4 and len(gt.getCatIds()) == 3
    assert ev.stats[0] == pytest.approx(1.0)


def test_panopticapi_pq_of_gt_against_itself_is_100(demo_root):
    pq_compute = require_package("panopticapi.evaluation", "panopticapi-lite").pq_compute

    json_file = os.path.join(demo_root, "annotations", "panoptic_val.json")
    folder = os.path.join(demo_root, "panoptic_val")
    with contextlib.redirect_stdout(io.StringIO()):
        result = pq_compute(json_file, json_file, folder, folder)
    assert result["All"]["pq"] == pytest.approx(1.0)
    assert result["Things"]["n"] == 3 and result["Stuff"]["n"] == 2


def test_semantic_png_agrees_with_panoptic(demo_root):
    with open(os.path.join(demo_root, "annotations", "panoptic_train.json")) as f:
        panoptic = json.load(f)
    ann = panoptic["annotations"][0]
    pan = np.asarray(Image.open(os.path.join(demo_root, "panoptic_train", ann["file_name"])))
    ids = rgb2id(pan)
    sem = np.asarray(Image.open(os.path.join(demo_root, "sem_seg_train", ann["file_name"])))
    assert sem.ndim == 2
    for seg in ann["segments_info"]:
        region = ids == seg["id"]
        assert region.sum() == seg["area"]
        assert (sem[region] == seg["category_id"] - 1).all()


def test_register_demo_generates_on_first_use_with_metadata(tmp_path):
    root = str(tmp_path / "demo_shapes")
    register_demo(root)
    try:
        records = DatasetCatalog.get("demo_shapes_val_panoptic")
        assert len(records) == 50
        rec = records[0]
        assert {"file_name", "pan_seg_file_name", "sem_seg_file_name", "segments_info"} <= set(rec)
        meta = MetadataCatalog.get("demo_shapes_val_panoptic")
        assert meta.evaluator_type == "coco_panoptic_seg"
        assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
        assert len(meta.stuff_classes) == 5 and os.path.isfile(meta.json_file)
        assert len(DatasetCatalog.get("demo_shapes_train_instance")) == 200
        sem = DatasetCatalog.get("demo_shapes_train_sem_seg")
        assert (
            len(sem) == 200 and MetadataCatalog.get("demo_shapes_train_sem_seg").ignore_label == 255
        )
    finally:
        for split in ("train", "val"):
            for kind in ("panoptic", "instance", "sem_seg"):
                DatasetCatalog.remove(f"demo_shapes_{split}_{kind}")
                MetadataCatalog.remove(f"demo_shapes_{split}_{kind}")
