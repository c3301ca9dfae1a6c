"""One-call registration of the unseen dataset in each format: records, inferred metadata
(detectron2's behaviour for non-contiguous COCO ids) and errors that name the bad file."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from mask2former.data import (
    DatasetCatalog,
    MetadataCatalog,
    register_coco_instances,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    register_sem_seg,
)
from tests.data.custom.unseen_data import CLASSES, COCO_IDS


def _copy(src, tmp_path, name):
    return shutil.copytree(src, tmp_path / name)


def test_coco_instances_non_contiguous_ids_map_as_detectron2(unseen_root, dataset_names):
    name = dataset_names()
    register_coco_instances(
        name, {}, f"{unseen_root}/coco/train.json", f"{unseen_root}/images/train"
    )
    meta = MetadataCatalog.get(name)
    # detectron2: classes sorted by category id, ids mapped to 0..K-1 in that order.
    assert meta.thing_classes == ["square", "ellipse"]
    assert meta.thing_dataset_id_to_contiguous_id == {5: 0, 17: 1}
    assert meta.evaluator_type == "coco" and len(meta.thing_colors) == 2
    records = DatasetCatalog.get(name)
    assert len(records) == 6 and records[0]["image_id"] == 100
    with open(f"{unseen_root}/coco/train.json") as f:
        first = json.load(f)["annotations"][0]
    expected = {5: 0, 17: 1}[first["category_id"]]
    assert records[0]["annotations"][0]["category_id"] == expected
    assert records[0]["file_name"] == f"{unseen_root}/images/train/train_000.jpg"


def test_coco_instances_given_classes_must_agree(unseen_root, dataset_names):
    with pytest.raises(ValueError, match="thing_classes.*disagrees with .*train.json"):
        register_coco_instances(
            dataset_names(),
            {"thing_classes": ["ellipse", "square"]},
            f"{unseen_root}/coco/train.json",
            f"{unseen_root}/images/train",
        )


def test_coco_instances_errors_name_the_file(unseen_root, tmp_path, dataset_names):
    with open(f"{unseen_root}/coco/train.json") as f:
        content = json.load(f)
    content["annotations"][2]["category_id"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    with pytest.raises(
        ValueError, match=r"bad.json: annotation 3 of .*train_\d+.jpg has category_id=99"
    ):
        register_coco_instances(dataset_names(), {}, str(bad), f"{unseen_root}/images/train")
    images = _copy(f"{unseen_root}/images/train", tmp_path, "images")
    os.remove(images / "train_004.jpg")
    with pytest.raises(FileNotFoundError, match="1 of the 6 images .*images/train_004.jpg"):
        register_coco_instances(dataset_names(), {}, f"{unseen_root}/coco/train.json", str(images))
    content = json.loads((tmp_path / "bad.json").read_text())
    content["annotations"][2]["category_id"] = COCO_IDS["square"]
    content["images"][1]["height"] += 1
    bad.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"train_001.jpg is 72x96 .* JSON says 72x97"):
        register_coco_instances(dataset_names(), {}, str(bad), f"{unseen_root}/images/train")
    assert not any(n.startswith("custom_test_test_coco_instances_errors") for n in DatasetCatalog)


def test_sem_seg_records_and_metadata(unseen_root, dataset_names):
    name = dataset_names()
    register_sem_seg(
        name, f"{unseen_root}/images/val", f"{unseen_root}/semantic/val", classes=CLASSES
    )
    meta = MetadataCatalog.get(name)
    assert meta.stuff_classes == CLASSES and len(meta.stuff_colors) == 4
    assert (meta.evaluator_type, meta.ignore_label) == ("sem_seg", 255)
    records = DatasetCatalog.get(name)
    assert [os.path.basename(r["sem_seg_file_name"]) for r in records] == [
        "val_000.png",
        "val_001.png",
        "val_002.png",
    ]


def test_sem_seg_errors_name_the_file(unseen_root, tmp_path, dataset_names):
    labels = _copy(f"{unseen_root}/semantic/train", tmp_path, "labels")
    images = f"{unseen_root}/images/train"
    # Too few classes for the values in the maps.
    with pytest.raises(
        ValueError, match=r"train_001.png has label values \[3\]; expected class ids 0..2"
    ):
        register_sem_seg(dataset_names(), images, str(labels), classes=CLASSES[:3])
    with pytest.raises(ValueError, match="ignore_label=1 is the id of class 'stripes'"):
        register_sem_seg(dataset_names(), images, str(labels), classes=CLASSES, ignore_label=1)
    os.remove(labels / "train_002.png")
    with pytest.raises(FileNotFoundError, match="1 images have no \\*png in .*: .*train_002.jpg"):
        register_sem_seg(dataset_names(), images, str(labels), classes=CLASSES)
    Image.new("RGB", (96, 72)).save(labels / "train_002.png")
    with pytest.raises(ValueError, match="train_002.png has mode RGB"):
        register_sem_seg(dataset_names(), images, str(labels), classes=CLASSES)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(labels / "train_002.png")
    with pytest.raises(ValueError, match="train_002.png is 10x10 but its image .* is 88x80"):
        register_sem_seg(dataset_names(), images, str(labels), classes=CLASSES)


def test_panoptic_metadata_puts_things_first(unseen_root, unseen_panoptic, dataset_names):
    conv = unseen_panoptic["val"]
    name = dataset_names()
    register_coco_panoptic(
        name,
        {},
        f"{unseen_root}/images/val",
        conv.panoptic_root,
        conv.panoptic_json,
        conv.instances_json,
        sem_seg_root=conv.sem_seg_root,
    )
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["ellipse", "square"]
    assert meta.stuff_classes == ["ellipse", "square", "background", "stripes"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 4: 1}
    assert meta.stuff_dataset_id_to_contiguous_id == {3: 0, 4: 1, 1: 2, 2: 3}
    assert (meta.evaluator_type, meta.label_divisor) == ("coco_panoptic_seg", 1000)
    record = DatasetCatalog.get(name)[0]
    assert {"pan_seg_file_name", "sem_seg_file_name", "segments_info"} <= set(record)
    assert record["height"] == 72 and record["width"] == 96


def test_panoptic_png_that_disagrees_with_its_json_is_named(
    unseen_root, unseen_panoptic, tmp_path, dataset_names
):
    conv = unseen_panoptic["val"]
    pngs = _copy(conv.panoptic_root, tmp_path, "panoptic")
    Image.new("RGB", (96, 72), (7, 0, 0)).save(pngs / "val_000.png")
    with pytest.raises(
        ValueError, match=r"val_000.png has segment ids \[7\] that are not in its segments_info"
    ):
        register_coco_panoptic(
            dataset_names(), {}, f"{unseen_root}/images/val", str(pngs), conv.panoptic_json
        )


def test_panoptic_separated_follows_detectron2(
    unseen_root, unseen_panoptic, tmp_path, dataset_names
):
    conv = unseen_panoptic["val"]
    # PanopticFPN semantic maps: every thing is 0, the stuff classes are 1..S.
    semantic = tmp_path / "stuff"
    semantic.mkdir()
    for stem in ("val_000", "val_001", "val_002"):
        labels = np.asarray(Image.open(f"{unseen_root}/semantic/val/{stem}.png")).copy()
        labels[(labels == 2) | (labels == 3)] = 0
        Image.fromarray(np.where(labels == 255, 255, labels).astype(np.uint8)).save(
            semantic / f"{stem}.png"
        )
    name = dataset_names()
    register_coco_panoptic_separated(
        name,
        {},
        f"{unseen_root}/images/val",
        conv.panoptic_root,
        conv.panoptic_json,
        str(semantic),
        f"{unseen_root}/coco/val.json",
    )
    merged = DatasetCatalog.get(name + "_separated")
    assert len(merged) == 3 and {"annotations", "sem_seg_file_name"} <= set(merged[0])
    assert MetadataCatalog.get(name + "_separated").stuff_classes == [
        "things",
        "background",
        "stripes",
    ]
    assert MetadataCatalog.get(name + "_stuffonly").evaluator_type == "sem_seg"


def test_panoptic_images_with_another_extension_get_a_hint(
    unseen_root, unseen_panoptic, dataset_names
):
    conv = unseen_panoptic["val"]
    args = (f"{unseen_root}/images/val", conv.panoptic_root, conv.panoptic_json)
    with pytest.raises(FileNotFoundError, match=r"val_000.png.*is image_ext right\?"):
        register_coco_panoptic(dataset_names(), {}, *args, image_ext=".png")
    name = dataset_names()
    register_coco_panoptic(name, {}, *args, image_ext=None)  # names from the JSON's images
    assert DatasetCatalog.get(name)[0]["file_name"] == f"{unseen_root}/images/val/val_000.jpg"
