"""Helpers of the evaluation tests: a one-image panoptic dataset (16x16: sky stuff, a box
and a ball) with hand-made ground truth and predictions whose metrics are known exactly."""

import itertools
import json

import numpy as np
import torch
from PIL import Image

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.structures import Boxes, Instances
from mask2former.utils.panoptic_ids import id2rgb

SIZE = 16
# Dataset ids: box 1, ball 2 (things), sky 3 (stuff). Contiguous: box 0, ball 1, sky 2.
CATEGORIES = [
    {"id": 1, "name": "box", "isthing": 1, "color": [200, 0, 0]},
    {"id": 2, "name": "ball", "isthing": 1, "color": [0, 200, 0]},
    {"id": 3, "name": "sky", "isthing": 0, "color": [0, 0, 200]},
]
_counter = itertools.count()


def gt_label_map():
    """(16, 16) contiguous labels: sky 2, box rows/cols 2..7 -> 0, ball rows/cols 9..14 -> 1."""
    labels = np.full((SIZE, SIZE), 2, dtype=np.int64)
    labels[2:8, 2:8] = 0
    labels[9:15, 9:15] = 1
    return labels


def pred_label_map():
    """The box exact; the ball shifted one column right (IoU 30/42); sky elsewhere."""
    labels = np.full((SIZE, SIZE), 2, dtype=np.int64)
    labels[2:8, 2:8] = 0
    labels[9:15, 10:16] = 1
    return labels


def segments_from_labels(labels, with_area=False):
    """Panoptic id map (segment id = contiguous label + 1) and its segments_info."""
    ids = labels + 1
    segments = []
    for label in (2, 0, 1):
        segment = {"id": int(label) + 1, "category_id": int(label), "isthing": label != 2}
        if with_area:
            ys, xs = np.nonzero(labels == label)
            segment["area"] = int(len(ys))
            segment["bbox"] = [
                int(xs.min()),
                int(ys.min()),
                int(np.ptp(xs) + 1),
                int(np.ptp(ys) + 1),
            ]
            segment["iscrowd"] = 0
        segments.append(segment)
    return ids, segments


def to_dataset_ids(segments):
    contiguous_to_dataset = {0: 1, 1: 2, 2: 3}
    out = []
    for s in segments:
        s = {k: v for k, v in s.items() if k != "isthing"}
        s["category_id"] = contiguous_to_dataset[s["category_id"]]
        out.append(s)
    return out


def register_tiny_panoptic(tmp_path, evaluator_type="coco_panoptic_seg"):
    """Registers the dataset under ``evaluator_type``; yields a dict with its name and paths."""
    name = f"test_tiny_panoptic_{next(_counter)}"
    pan_dir, sem_dir = tmp_path / "panoptic", tmp_path / "sem"
    pan_dir.mkdir()
    sem_dir.mkdir()
    labels = gt_label_map()
    ids, segments = segments_from_labels(labels, with_area=True)
    Image.fromarray(id2rgb(ids)).save(pan_dir / "img1.png")
    sem = labels.astype(np.uint8)
    sem[0, 0] = 255  # one ignored pixel (sky in the panoptic ground truth)
    Image.fromarray(sem).save(sem_dir / "img1.png")
    gt_json = tmp_path / "panoptic.json"
    json.dump(
        {
            "images": [{"id": 1, "file_name": "img1.jpg", "height": SIZE, "width": SIZE}],
            "annotations": [
                {"image_id": 1, "file_name": "img1.png", "segments_info": to_dataset_ids(segments)}
            ],
            "categories": CATEGORIES,
        },
        open(gt_json, "w"),
    )
    record = {
        "file_name": str(tmp_path / "img1.jpg"),
        "image_id": 1,
        "height": SIZE,
        "width": SIZE,
        "pan_seg_file_name": str(pan_dir / "img1.png"),
        "sem_seg_file_name": str(sem_dir / "img1.png"),
        "segments_info": segments,
    }
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(
        thing_classes=["box", "ball"],
        stuff_classes=["box", "ball", "sky"],
        thing_dataset_id_to_contiguous_id={1: 0, 2: 1},
        stuff_dataset_id_to_contiguous_id={1: 0, 2: 1, 3: 2},
        ignore_label=255,
        evaluator_type=evaluator_type,
        panoptic_json=str(gt_json),
        panoptic_root=str(pan_dir),
    )
    yield {"name": name, "record": record, "root": tmp_path, "gt_json": gt_json}
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def model_outputs(ball_class=1):
    """Outputs of a hypothetical model for the one image, in the meta-architecture's format."""
    labels = pred_label_map()
    ids, segments = segments_from_labels(labels)
    sem_seg = torch.nn.functional.one_hot(torch.from_numpy(labels), 3).permute(2, 0, 1).float()
    masks = torch.from_numpy(np.stack([labels == 0, labels == 1])).float()
    instances = Instances(
        (SIZE, SIZE),
        pred_masks=masks,
        scores=torch.tensor([0.9, 0.8]),
        pred_classes=torch.tensor([0, ball_class]),
        pred_boxes=Boxes(torch.zeros(2, 4)),
    )
    return {
        "sem_seg": sem_seg,
        "panoptic_seg": (torch.from_numpy(ids).int(), segments),
        "instances": instances,
    }
