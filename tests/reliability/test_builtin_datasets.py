"""The builtin datasets are known without ``register_builtin()`` (issue 12, item 3)."""

from __future__ import annotations

import os

import pytest
import torch

import mask2former.data.datasets.builtin as builtin
from mask2former.config import get_cfg
from mask2former.data import DatasetCatalog, MetadataCatalog
from mask2former.data.catalog import UnknownDatasetError
from mask2former.data.datasets import load_class_table
from mask2former.modeling import build_model
from tests.tiny_config import REPO_ROOT


@pytest.fixture
def fresh_catalogs(monkeypatch):
    """Empty catalogs and no builtin registration yet, as in a new process."""
    monkeypatch.setattr(builtin, "_REGISTERED_ROOTS", {})
    monkeypatch.setattr(builtin, "_BUILTIN_NAMES", set())
    monkeypatch.setattr(DatasetCatalog, "data", {})
    monkeypatch.setattr(MetadataCatalog, "data", {})


def _original_cfg(relative_path: str):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", relative_path))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def test_names_and_metadata_known_without_a_call_and_without_disk(fresh_catalogs, tmp_path):
    root = tmp_path / "absent"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETECTRON2_DATASETS", str(root))
        assert "coco_2017_val_panoptic" in DatasetCatalog
        assert "demo_shapes_train_panoptic" in DatasetCatalog.list()
        ade = MetadataCatalog.get("ade20k_panoptic_val")
        assert len(ade.thing_dataset_id_to_contiguous_id) == 100
        assert ade.panoptic_root == str(root / "ADEChallengeData2016" / "ade20k_panoptic_val")
    assert not root.exists(), "registration must not create or read dataset folders"


def test_root_follows_the_environment_at_load_time(fresh_catalogs, monkeypatch, tmp_path):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "first"))
    assert MetadataCatalog.get("coco_2017_val").image_root.startswith(str(tmp_path / "first"))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "second"))
    with pytest.raises(FileNotFoundError) as err:
        DatasetCatalog.get("coco_2017_val")
    message = str(err.value)
    assert "coco_2017_val" in message and str(tmp_path / "second") in message
    assert "DETECTRON2_DATASETS" in message
    assert MetadataCatalog.get("coco_2017_val").image_root.startswith(str(tmp_path / "second"))


def test_explicit_root_wins_over_the_environment(fresh_catalogs, monkeypatch, tmp_path):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "env"))
    builtin.register_builtin(str(tmp_path / "explicit"))
    builtin.register_builtin()  # keeps the explicit root
    assert MetadataCatalog.get("ade20k_sem_seg_val").sem_seg_root.startswith(
        str(tmp_path / "explicit")
    )
    with pytest.raises(ValueError, match="already registered under"):
        builtin.register_builtin(str(tmp_path / "other"))


def test_unknown_dataset_name_suggests_close_matches(fresh_catalogs):
    with pytest.raises(UnknownDatasetError) as err:
        DatasetCatalog.get("coco_2017_vall_panoptic")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert "'coco_2017_vall_panoptic' is not registered" in message
    assert "Did you mean: coco_2017_val_panoptic" in message


def test_coco_model_panoptic_inference_without_register_builtin(fresh_catalogs):
    cfg = _original_cfg("coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml")
    model = build_model(cfg).eval()
    table = load_class_table("coco_panoptic_133")
    assert model.thing_ids == [i for i, c in enumerate(table) if c["isthing"]]
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8).float()
    with torch.no_grad():
        (result,) = model([{"image": image, "height": 64, "width": 96}])
    panoptic, segments = result["panoptic_seg"]
    assert panoptic.shape == (64, 96) and isinstance(segments, list)


def test_ade20k_model_knows_its_thing_ids_without_register_builtin(fresh_catalogs):
    cfg = _original_cfg("ade20k/panoptic-segmentation/maskformer2_R50_bs16_160k.yaml")
    model = build_model(cfg)
    table = load_class_table("ade20k_panoptic_150")
    assert model.thing_ids == [i for i, c in enumerate(table) if c["isthing"]]
    assert len(model.thing_ids) == 100
