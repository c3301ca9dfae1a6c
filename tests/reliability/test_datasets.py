"""Bad dataset files (issue 12, item 1): missing, truncated, pointing at absent files, unknown
categories. Each error names the file (and the dataset)."""

from __future__ import annotations

import json
import os

import pytest

from mask2former.data import DatasetCatalog, MaskFormerPanopticDatasetMapper
from mask2former.data.datasets import load_coco_json, load_coco_panoptic_json
from mask2former.data.datasets.demo import demo_metadata
from mask2former.data.datasets.demo_files import generate_demo_dataset
from tests.tiny_config import tiny_cfg


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability_data") / "demo_shapes"
    generate_demo_dataset(str(root), num_train=3, num_val=1)
    return root


def _copy_dataset(demo_root, tmp_path):
    """A private copy of the train split's panoptic files, free to damage."""
    root = tmp_path / "demo_shapes"
    for sub in ("images/train", "panoptic_train", "annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for name in os.listdir(demo_root / sub):
            if os.path.isfile(demo_root / sub / name):
                (root / sub / name).write_bytes((demo_root / sub / name).read_bytes())
    return root


def _load_panoptic(root, dataset_name="broken_panoptic"):
    return load_coco_panoptic_json(
        str(root / "annotations" / "panoptic_train.json"),
        str(root / "images" / "train"),
        str(root / "panoptic_train"),
        demo_metadata(),
        image_ext=".png",
        dataset_name=dataset_name,
    )


def test_missing_dataset_files_name_path_root_and_script(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        DatasetCatalog.get("ade20k_panoptic_val")
    message = str(err.value)
    expected_json = tmp_path / "ADEChallengeData2016" / "ade20k_panoptic_val.json"
    assert "'ade20k_panoptic_val'" in message and str(expected_json) in message
    assert f"$DETECTRON2_DATASETS='{tmp_path}'" in message
    assert "datasets/prepare_ade20k_pan_seg.py" in message


@pytest.mark.parametrize("kind", ["panoptic", "instances"])
def test_truncated_json_names_file_and_position(demo_root, tmp_path, kind):
    root = _copy_dataset(demo_root, tmp_path)
    path = root / "annotations" / f"{kind}_train.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError) as err:
        if kind == "panoptic":
            _load_panoptic(root)
        else:
            load_coco_json(str(path), str(root / "images" / "train"), "broken_instances")
    message = str(err.value)
    assert str(path) in message and "is not valid JSON" in message
    assert "at line 1, column" in message and "truncated" in message


def test_annotation_naming_a_missing_panoptic_png(demo_root, tmp_path):
    root = _copy_dataset(demo_root, tmp_path)
    annotations = json.loads((root / "annotations" / "panoptic_train.json").read_text())
    first_png = root / "panoptic_train" / annotations["annotations"][0]["file_name"]
    later_png = root / "panoptic_train" / annotations["annotations"][2]["file_name"]
    later_png.unlink()
    records = _load_panoptic(root)
    mapper = MaskFormerPanopticDatasetMapper(tiny_cfg(), is_train=True)
    mapper(records[0])
    with pytest.raises(FileNotFoundError, match=str(later_png)):
        mapper(records[2])
    first_png.unlink()
    with pytest.raises(FileNotFoundError) as err:
        _load_panoptic(root)
    assert str(first_png) in str(err.value) and "'broken_panoptic'" in str(err.value)


def test_unknown_category_id_names_file_and_annotation(demo_root, tmp_path):
    root = _copy_dataset(demo_root, tmp_path)
    path = root / "annotations" / "panoptic_train.json"
    annotations = json.loads(path.read_text())
    annotations["annotations"][1]["segments_info"][0]["category_id"] = 999
    path.write_text(json.dumps(annotations))
    with pytest.raises(ValueError) as err:
        _load_panoptic(root)
    png_name = annotations["annotations"][1]["file_name"]
    assert f"{path}: segment" in str(err.value) and png_name in str(err.value)
    assert "category_id=999, which is not among the dataset's 5 categories" in str(err.value)

    path = root / "annotations" / "instances_train.json"
    instances = json.loads(path.read_text())
    instances["annotations"][0]["category_id"] = 999
    path.write_text(json.dumps(instances))
    with pytest.raises(ValueError) as err:
        load_coco_json(str(path), str(root / "images" / "train"))
    assert str(path) in str(err.value) and "category_id=999, which is not in 'categories'" in str(
        err.value
    )
