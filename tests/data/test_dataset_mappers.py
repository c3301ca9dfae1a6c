"""Every training mapper yields correctly typed targets on demo data; builder selection."""

import copy

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.data import (
    DatasetMapper,
    MetadataCatalog,
    build_train_mapper,
)
from mask2former.data.datasets import load_coco_json, load_coco_panoptic_json, load_sem_seg
from mask2former.data.datasets.demo import demo_metadata
from mask2former.structures import Boxes


@pytest.fixture(scope="module")
def records(demo_root):
    meta = demo_metadata()
    return {
        "panoptic": load_coco_panoptic_json(
            f"{demo_root}/annotations/panoptic_train.json",
            f"{demo_root}/images/train",
            f"{demo_root}/panoptic_train",
            meta,
            semseg_dir=f"{demo_root}/sem_seg_train",
            image_ext=".png",
        ),
        "instance": load_coco_json(
            f"{demo_root}/annotations/instances_train.json", f"{demo_root}/images/train"
        ),
        "sem_seg": load_sem_seg(
            f"{demo_root}/sem_seg_train", f"{demo_root}/images/train", "png", "png"
        ),
    }


def _cfg(mapper_name):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("test_mapper_dataset",)
    MetadataCatalog.get("test_mapper_dataset").set(ignore_label=255)
    cfg.INPUT.DATASET_MAPPER_NAME = mapper_name
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (96, 128)
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (96, 96)
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 0.9
    cfg.INPUT.COLOR_AUG_SSD = True
    cfg.INPUT.SIZE_DIVISIBILITY = 96
    cfg.INPUT.IMAGE_SIZE = 112
    return cfg


@pytest.mark.parametrize(
    "mapper_name, kind, has_sem_seg, has_boxes, size",
    [
        ("mask_former_semantic", "sem_seg", True, False, 96),
        ("mask_former_panoptic", "panoptic", True, False, 96),
        ("mask_former_instance", "instance", False, False, 96),
        ("coco_instance_lsj", "instance", False, True, 112),
        ("coco_panoptic_lsj", "panoptic", False, True, 112),
    ],
)
def test_mapper_outputs(records, mapper_name, kind, has_sem_seg, has_boxes, size):
    mapper = build_train_mapper(_cfg(mapper_name))
    for record in records[kind][:4]:
        before = copy.deepcopy(record)
        out = mapper(record)
        # The loader maps the same record every epoch: the mapper must work on a copy.
        assert record == before
        image = out["image"]
        assert image.dtype == torch.uint8 and image.shape == (3, size, size)
        inst = out["instances"]
        assert inst.image_size == (size, size)
        assert inst.gt_classes.dtype == torch.int64
        assert inst.gt_masks.dtype == torch.bool and inst.gt_masks.shape[1:] == (size, size)
        assert len(inst.gt_classes) == inst.gt_masks.shape[0]
        assert all(0 <= c < 5 for c in inst.gt_classes.tolist())
        assert ("sem_seg" in out) == has_sem_seg
        if has_sem_seg:
            assert out["sem_seg"].dtype == torch.int64 and out["sem_seg"].shape == (size, size)
        assert inst.has("gt_boxes") == has_boxes
        if has_boxes:
            assert isinstance(inst.gt_boxes, Boxes) and len(inst.gt_boxes) == len(inst)
        # As the original: the image path stays, the label image path it read is consumed.
        assert out["file_name"] == record["file_name"]
        consumed = {"panoptic": "pan_seg_file_name", "sem_seg": "sem_seg_file_name"}.get(kind)
        if consumed is not None:
            assert consumed in record and consumed not in out


def test_semantic_targets_match_sem_seg(records):
    mapper = build_train_mapper(_cfg("mask_former_semantic"))
    out = mapper(records["sem_seg"][0])
    sem, inst = out["sem_seg"], out["instances"]
    for cls, mask in zip(inst.gt_classes, inst.gt_masks):
        assert torch.equal(mask, sem == cls)
    assert set(inst.gt_classes.tolist()) == set(sem.unique().tolist()) - {255}


def test_image_without_annotations_trains_as_empty_target(records):
    record = dict(records["instance"][0], annotations=[])
    for name in ("mask_former_instance", "coco_instance_lsj"):
        inst = build_train_mapper(_cfg(name))(record)["instances"]
        assert len(inst) == 0 and inst.gt_masks.dim() == 3


def test_unknown_mapper_name_lists_choices():
    with pytest.raises(KeyError, match="INPUT.DATASET_MAPPER_NAME.*mask_former_panoptic"):
        build_train_mapper(_cfg("nope"))


def test_test_mapper_resizes_and_keeps_ids(records):
    cfg = _cfg("mask_former_panoptic")
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 1000
    record = records["panoptic"][0]
    out = DatasetMapper(cfg, False)(record)
    h, w = record["height"], record["width"]
    assert min(out["image"].shape[1:]) == 64
    assert (out["height"], out["width"]) == (h, w) and out["image_id"] == record["image_id"]
    assert "sem_seg_file_name" not in out


def test_unreadable_image_names_the_file(records, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    record = dict(records["sem_seg"][0], file_name=str(bad))
    with pytest.raises(OSError, match="broken.png"):
        build_train_mapper(_cfg("mask_former_semantic"))(record)
