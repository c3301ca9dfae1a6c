"""Raw prediction files (evaluation/prediction_files.py): ids, formats, category mapping."""

import json

import numpy as np
import torch
from PIL import Image

from mask2former.data.catalog import Metadata
from mask2former.data.detection_utils import rgb2id
from mask2former.evaluation.prediction_files import (
    RawPredictionWriter,
    panoptic_categories,
    semantic_label_map,
)

# COCO-style panoptic metadata: stuff_classes lists every class, things first.
META = Metadata(
    name="io_test",
    thing_classes=["person"],
    stuff_classes=["person", "sky"],
    thing_dataset_id_to_contiguous_id={7: 0},
    stuff_dataset_id_to_contiguous_id={7: 0, 40: 1},
)


def test_categories_use_dataset_ids_and_things_win():
    assert panoptic_categories(META) == [
        {"id": 7, "name": "person", "isthing": 1},
        {"id": 40, "name": "sky", "isthing": 0},
    ]


def test_semantic_label_map_dtype_follows_class_count():
    assert semantic_label_map(torch.rand(5, 3, 4)).dtype == np.uint8
    scores = torch.zeros(300, 2, 2)
    scores[299] = 1
    labels = semantic_label_map(scores)
    assert labels.dtype == np.uint16 and (labels == 299).all()


def test_writer_round_trip(tmp_path):
    ids = torch.zeros(4, 5, dtype=torch.int32)
    ids[:2] = 1
    ids[2:, :3] = 2
    segments = [
        {"id": 1, "isthing": False, "category_id": 1},
        {"id": 2, "isthing": True, "category_id": 0},
    ]
    writer = RawPredictionWriter(str(tmp_path), META)
    writer.add("img", {"panoptic_seg": (ids, segments), "sem_seg": torch.rand(2, 4, 5)})
    writer.close()
    np.testing.assert_array_equal(
        rgb2id(np.asarray(Image.open(tmp_path / "panoptic/img.png"))), ids
    )
    assert np.asarray(Image.open(tmp_path / "sem_seg/img.png")).shape == (4, 5)
    with open(tmp_path / "panoptic.json") as f:
        (annotation,) = json.load(f)["annotations"]
    assert annotation["file_name"] == "img.png"
    assert annotation["segments_info"] == [
        {"id": 1, "category_id": 40, "iscrowd": 0, "area": 10, "bbox": [0, 0, 5, 2]},
        {"id": 2, "category_id": 7, "iscrowd": 0, "area": 6, "bbox": [0, 2, 3, 2]},
    ]
    assert not (tmp_path / "instances.json").exists()
