"""Label maps -> COCO panoptic: official readers accept the output, segments match the input
maps, and the instance-id-map and COCO-JSON routes agree."""

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from mask2former.data.datasets.custom_convert import convert_to_coco_panoptic
from mask2former.utils.panoptic_ids import rgb2id
from tests.data.custom.unseen_data import CLASSES, IGNORE_LABEL, THING_CLASSES
from tests.optional import require_package


def test_segments_reproduce_the_label_maps(unseen_root, unseen_panoptic):
    conv = unseen_panoptic["val"]
    content = json.loads(open(conv.panoptic_json).read())
    assert [c["name"] for c in content["categories"]] == CLASSES
    contiguous = {3: 0, 4: 1, 1: 2, 2: 3}  # things first
    for ann in content["annotations"]:
        ids = rgb2id(np.asarray(Image.open(f"{conv.panoptic_root}/{ann['file_name']}")))
        semantic = np.asarray(Image.open(f"{unseen_root}/semantic/val/{ann['file_name']}"))
        instances = np.asarray(Image.open(f"{unseen_root}/instances/val/{ann['file_name']}"))
        # Category of every pixel = its semantic class; void exactly where ignored.
        categories = np.zeros_like(ids)
        for segment in ann["segments_info"]:
            categories[ids == segment["id"]] = segment["category_id"]
            assert segment["area"] == int((ids == segment["id"]).sum())
        assert np.array_equal(categories, np.where(semantic == IGNORE_LABEL, 0, semantic + 1))
        things = [s for s in ann["segments_info"] if s["category_id"] in (3, 4)]
        assert len(things) == len(np.unique(instances[instances > 0]))
        sem = np.asarray(Image.open(f"{conv.sem_seg_root}/{ann['file_name']}"))
        expected = np.vectorize(lambda v: contiguous.get(v + 1, IGNORE_LABEL))(semantic.astype(int))
        assert np.array_equal(sem, expected)


def test_coco_json_route_agrees_with_instance_map_route(unseen_root, unseen_panoptic, tmp_path):
    conv = convert_to_coco_panoptic(
        f"{unseen_root}/semantic/val",
        f"{unseen_root}/images/val",
        str(tmp_path),
        classes=CLASSES,
        thing_classes=THING_CLASSES,
        instances_json=f"{unseen_root}/coco/val.json",
    )
    ours, theirs = (
        json.loads(open(c.panoptic_json).read()) for c in (conv, unseen_panoptic["val"])
    )
    assert ours["categories"] == theirs["categories"] and ours["images"] == theirs["images"]
    # Polygons rasterise a little differently from the exact masks: same segments, close areas.
    for mine, reference in zip(ours["annotations"], theirs["annotations"]):
        pairs = list(zip(mine["segments_info"], reference["segments_info"], strict=True))
        assert all(a["category_id"] == b["category_id"] for a, b in pairs)
        assert all(abs(a["area"] - b["area"]) <= 0.3 * b["area"] for a, b in pairs)


def test_pycocotools_reads_the_instances_json(unseen_panoptic):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(unseen_panoptic["val"].instances_json)
    assert sorted(coco.getCatIds()) == [3, 4] and len(coco.getImgIds()) == 3
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(ann).sum() == ann["area"]


def test_panopticapi_pq_of_the_ground_truth_is_perfect(unseen_root, unseen_panoptic):
    pq_compute = require_package("panopticapi.evaluation", "panopticapi-lite").pq_compute
    conv = unseen_panoptic["val"]
    with contextlib.redirect_stdout(io.StringIO()):
        result = pq_compute(
            conv.panoptic_json, conv.panoptic_json, conv.panoptic_root, conv.panoptic_root
        )
    assert result["All"]["pq"] == pytest.approx(1.0)


def test_bad_input_is_named(unseen_root, tmp_path):
    common = dict(
        classes=CLASSES, thing_classes=THING_CLASSES, instance_dir=f"{unseen_root}/instances/val"
    )
    with pytest.raises(ValueError, match=r"thing_classes \['car'\] are not in classes"):
        convert_to_coco_panoptic(
            f"{unseen_root}/semantic/val",
            f"{unseen_root}/images/val",
            str(tmp_path),
            **{**common, "thing_classes": ["car"]},
        )
    with pytest.raises(ValueError, match=r"val_001.png has values \[3\] outside the 3 classes"):
        convert_to_coco_panoptic(
            f"{unseen_root}/semantic/val",
            f"{unseen_root}/images/val",
            str(tmp_path),
            **{**common, "classes": CLASSES[:3], "thing_classes": ["ellipse"]},
        )


def test_an_object_covers_the_stuff_under_it(tmp_path):
    # A COCO object drawn over stuff pixels (the label map does not know it) is the object's.
    for folder in ("semantic", "images"):
        (tmp_path / folder).mkdir()
    labels = np.zeros((40, 50), np.uint8)
    labels[20:] = 1  # stripes
    Image.fromarray(labels).save(tmp_path / "semantic" / "a.png")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    box = [10.0, 10.0, 20.0, 20.0]  # x, y, w, h: half over background, half over stripes
    polygon = [10, 10, 30, 10, 30, 30, 10, 30]
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 50}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 9,
                "segmentation": [polygon],
                "bbox": box,
                "area": 400.0,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 9, "name": "square"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    conv = convert_to_coco_panoptic(
        str(tmp_path / "semantic"),
        str(tmp_path / "images"),
        str(tmp_path / "out"),
        classes=CLASSES,
        thing_classes=THING_CLASSES,
        instances_json=str(tmp_path / "coco.json"),
    )
    ids = rgb2id(np.asarray(Image.open(f"{conv.panoptic_root}/a.png")))
    segments = json.loads(open(conv.panoptic_json).read())["annotations"][0]["segments_info"]
    category = {s["id"]: s["category_id"] for s in segments}
    assert {category[i] for i in np.unique(ids[12:28, 12:28])} == {4}  # square, over both
    assert {category[i] for i in np.unique(ids[32:, :])} == {2}  # stripes elsewhere
