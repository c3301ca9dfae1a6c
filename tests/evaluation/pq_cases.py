"""Generated COCO panoptic ground truth + predictions (JSON + PNG folders) for PQ tests.

Each case has a few small images whose ground truth holds things and stuff, crowd regions,
void, an id missing from the JSON and a JSON segment missing from the PNG; the predictions
shift, grow, shrink, split, merge and relabel segments, paint void and put new segments on
void and crowd, so every rule of ``pq_compute`` decides some outcome.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from mask2former.utils.panoptic_ids import id2rgb

THING_IDS = (1, 2, 3, 5, 8)
STUFF_IDS = (10, 11, 14)
CATEGORIES = [
    {"id": c, "name": f"cat{c}", "isthing": int(c in THING_IDS)} for c in THING_IDS + STUFF_IDS
]


def _random_box(rng, height, width, min_size=3):
    h = int(rng.integers(min_size, max(min_size + 1, height // 2)))
    w = int(rng.integers(min_size, max(min_size + 1, width // 2)))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    return slice(y, y + h), slice(x, x + w)


def _unique_ids(rng, count):
    return [int(i) for i in rng.choice(np.arange(1, 256**3), size=count, replace=False)]


def _ground_truth(rng, height, width):
    """(H, W) ids and segments_info: stuff bands, thing boxes (some crowd), void, oddities."""
    ids = np.zeros((height, width), dtype=np.int64)
    segments = []
    new_ids = iter(_unique_ids(rng, 32))
    for stuff in rng.choice(STUFF_IDS, size=int(rng.integers(1, 3)), replace=False):
        rows = _random_box(rng, height, width)[0]
        seg_id = next(new_ids)
        ids[rows, :] = seg_id
        segments.append({"id": seg_id, "category_id": int(stuff), "iscrowd": 0})
    for k in range(int(rng.integers(2, 6))):
        seg_id = next(new_ids)
        ids[_random_box(rng, height, width)] = seg_id
        crowd = int(k > 0 and rng.random() < 0.25)
        segments.append({"id": seg_id, "category_id": int(rng.choice(THING_IDS)), "iscrowd": crowd})
    ids[_random_box(rng, height, width, min_size=2)] = 0  # void
    if rng.random() < 0.5:  # pixels of an id the JSON does not list
        ids[_random_box(rng, height, width, min_size=2)] = next(new_ids)
    present = set(np.unique(ids).tolist())
    segments = [s for s in segments if s["id"] in present]
    for s in segments:
        s["area"] = int((ids == s["id"]).sum())
    if rng.random() < 0.3:  # a JSON segment that the PNG lacks
        segments.append(
            {"id": next(new_ids), "category_id": int(rng.choice(THING_IDS)), "iscrowd": 0}
        )
        segments[-1]["area"] = int(rng.integers(1, 20))
    return ids, segments


def _prediction(rng, gt_ids, gt_segments, height, width):
    """(H, W) ids and segments_info derived from the ground truth by random edits."""
    labels = np.zeros_like(gt_ids)  # predicted "objects", 0 = void
    categories = {}
    next_label = 1
    for s in gt_segments:
        mask = gt_ids == s["id"]
        if not mask.any() or rng.random() < 0.15:  # missed
            continue
        action = rng.random()
        if action < 0.25:
            mask = np.roll(mask, tuple(int(v) for v in rng.integers(-3, 4, size=2)), (0, 1))
        elif action < 0.4:  # split into two halves
            half = np.zeros_like(mask)
            half[:, : int(rng.integers(1, width))] = True
            labels[mask & half] = next_label
            categories[next_label] = s["category_id"]
            next_label += 1
            mask = mask & ~half
        elif action < 0.5:
            mask = np.zeros_like(mask)
            mask[_random_box(rng, height, width)] = True
        category = s["category_id"]
        if rng.random() < 0.1:
            category = int(rng.choice(THING_IDS + STUFF_IDS))
        labels[mask] = next_label
        categories[next_label] = category
        next_label += 1
    if rng.random() < 0.3 and next_label > 2:  # merge two predictions
        labels[labels == 2] = 1
        categories.pop(2)
    for _ in range(int(rng.integers(0, 3))):  # new segments, often on void or crowd
        labels[_random_box(rng, height, width, min_size=2)] = next_label
        categories[next_label] = int(rng.choice(THING_IDS + STUFF_IDS))
        next_label += 1
    if rng.random() < 0.5:
        labels[_random_box(rng, height, width, min_size=2)] = 0
    present = [int(v) for v in np.unique(labels) if v != 0]
    seg_ids = _unique_ids(rng, len(present))
    ids = np.zeros_like(labels)
    segments = []
    for label, seg_id in zip(present, seg_ids):
        ids[labels == label] = seg_id
        segments.append({"id": seg_id, "category_id": categories[label]})
    return ids, segments


def write_case(
    root: Path, seed: int, num_images: int = 3, size: tuple[int, int] | None = None
) -> dict:
    """Writes ``gt.json``, ``gt/``, ``pred.json``, ``pred/`` under ``root``; returns paths.

    Images are ``size`` (height, width), or of random sizes in [16, 40) when None.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(exist_ok=True)
    (root / "pred").mkdir(exist_ok=True)
    gt_annotations, pred_annotations = [], []
    for image_id in range(1, num_images + 1):
        height, width = (int(v) for v in rng.integers(16, 40, size=2))
        if size is not None:
            height, width = size
        gt_ids, gt_segments = _ground_truth(rng, height, width)
        pred_ids, pred_segments = _prediction(rng, gt_ids, gt_segments, height, width)
        name = f"{image_id:06d}.png"
        Image.fromarray(id2rgb(gt_ids)).save(root / "gt" / name)
        Image.fromarray(id2rgb(pred_ids)).save(root / "pred" / name)
        gt_annotations.append(
            {"image_id": image_id, "file_name": name, "segments_info": gt_segments}
        )
        pred_annotations.append(
            {"image_id": image_id, "file_name": name, "segments_info": pred_segments}
        )
    (root / "gt.json").write_text(
        json.dumps({"categories": CATEGORIES, "annotations": gt_annotations})
    )
    (root / "pred.json").write_text(json.dumps({"annotations": pred_annotations}))
    return {
        "gt_json": str(root / "gt.json"),
        "pred_json": str(root / "pred.json"),
        "gt_folder": str(root / "gt"),
        "pred_folder": str(root / "pred"),
    }
