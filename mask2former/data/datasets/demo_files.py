"""Deterministic synthetic "shapes" dataset in the real COCO / COCO-panoptic / semantic formats.

Scenes: a sky / ground background split by a wavy horizon (stuff) and 1-5 circles, squares
and triangles (things) with outlines, painted back to front so that they occlude each other;
an object's mask is its visible part. Every file is byte-identical across runs (seeded per
image, PNG without timestamps, JSON with sorted keys).

Layout under ``DIR``::

    images/{train,val}/<stem>.png
    annotations/instances_{train,val}.json      COCO instances (RLE masks)
    annotations/panoptic_{train,val}.json       COCO panoptic
    panoptic_{train,val}/<stem>.png             panoptic ids, RGB encoded
    sem_seg_{train,val}/<stem>.png              contiguous ids 0..4 (things included), 255 ignore

Usage: ``python -m mask2former.data.datasets.demo_files --output DIR [--num-train N --num-val M]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile

import cv2
import numpy as np
import pycocotools.mask as mask_util
from filelock import FileLock
from PIL import Image

from mask2former.utils.panoptic_ids import id2rgb

logger = logging.getLogger(__name__)

__all__ = ["CATEGORIES", "DONE_MARKER", "ensure_demo_dataset", "generate_demo_dataset"]

# COCO-style categories: things first, then stuff. Colours are the base paint colours.
CATEGORIES = [
    {"id": 1, "name": "circle", "isthing": 1, "color": [220, 40, 40]},
    {"id": 2, "name": "square", "isthing": 1, "color": [240, 200, 30]},
    {"id": 3, "name": "triangle", "isthing": 1, "color": [150, 50, 210]},
    {"id": 4, "name": "sky", "isthing": 0, "color": [110, 170, 235]},
    {"id": 5, "name": "ground", "isthing": 0, "color": [80, 140, 60]},
]
SPLITS = {"train": 0, "val": 1}
DONE_MARKER = "demo_shapes.json"
_SIZES = (144, 160, 176)
_MIN_VISIBLE_FRACTION = 0.5
_MIN_VISIBLE_PIXELS = 150


def _shape_mask(rng: np.random.Generator, kind: int, h: int, w: int) -> np.ndarray:
    """Full (unoccluded) mask of one shape of category ``kind`` at a random pose."""
    size = rng.uniform(24, 56)
    cx = rng.uniform(size / 2, w - size / 2)
    cy = rng.uniform(size / 2, h - size / 2)
    mask = np.zeros((h, w), dtype=np.uint8)
    if kind == 1:
        cv2.circle(mask, (round(cx), round(cy)), round(size / 2), 1, thickness=-1)
        return mask.astype(bool)
    angle = rng.uniform(0, 2 * np.pi)
    corners = 4 if kind == 2 else 3
    radius = size / np.sqrt(2) if kind == 2 else size / np.sqrt(3) * 1.15
    angles = angle + np.arange(corners) * 2 * np.pi / corners
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def _layout(rng: np.random.Generator, h: int, w: int) -> list[tuple[int, np.ndarray]]:
    """Objects (category id, full mask) back to front: each keeps a large visible part and
    objects of the same class never overlap (they would be indistinguishable)."""
    num_objects = int(rng.integers(1, 6))
    while True:
        for _ in range(30):
            objects = [(int(rng.integers(1, 4)), None) for _ in range(num_objects)]
            objects = [(k, _shape_mask(rng, k, h, w)) for k, _ in objects]
            if _layout_ok(objects):
                return objects
        num_objects = max(1, num_objects - 1)


def _layout_ok(objects: list[tuple[int, np.ndarray]]) -> bool:
    covered = np.zeros_like(objects[0][1])
    for _, mask in reversed(objects):  # front to back
        visible = mask & ~covered
        area = mask.sum()
        if area == 0 or visible.sum() < max(_MIN_VISIBLE_PIXELS, _MIN_VISIBLE_FRACTION * area):
            return False
        covered |= mask
    for i, (kind_i, mask_i) in enumerate(objects):
        for kind_j, mask_j in objects[i + 1 :]:
            if (
                kind_i == kind_j
                and (cv2.dilate(mask_i.astype(np.uint8), np.ones((5, 5))) & mask_j).any()
            ):
                return False
    return True


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB float image of sky over ground, and the (H, W) bool sky mask."""
    xs = np.arange(w)
    horizon = h * rng.uniform(0.35, 0.65) + rng.uniform(3, 12) * np.sin(
        2 * np.pi * xs / rng.uniform(40, 120) + rng.uniform(0, 6.3)
    )
    ys = np.arange(h)[:, None]
    sky = ys < horizon[None, :]
    sky_top = np.array(CATEGORIES[3]["color"], dtype=np.float64) - 40 + rng.uniform(-10, 10, 3)
    sky_low = np.array(CATEGORIES[3]["color"], dtype=np.float64) + 25 + rng.uniform(-10, 10, 3)
    t = (ys / h)[..., None]
    sky_rgb = sky_top * (1 - t) + sky_low * t
    ground_base = np.array(CATEGORIES[4]["color"], dtype=np.float64) + rng.uniform(-15, 15, 3)
    coarse = rng.uniform(-25, 25, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    texture = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    stripes = 8 * np.sin(ys * rng.uniform(0.6, 1.2))[..., None]
    ground_rgb = ground_base + texture + stripes
    image = np.where(sky[..., None], np.broadcast_to(sky_rgb, (h, w, 3)), ground_rgb)
    return image, sky


def _bbox_xywh(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]


def _render(seed: int, split_code: int, index: int) -> dict:
    """One scene: image (H, W, 3) uint8, label map of segments and their descriptions."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_code, index]))
    h, w = int(rng.choice(_SIZES)), int(rng.choice(_SIZES))
    image, sky = _background(rng, h, w)
    segment_map = np.where(sky, 4, 5).astype(np.int32)  # stuff segments use their category id
    objects = _layout(rng, h, w)
    kernel = np.ones((3, 3), np.uint8)
    for n, (kind, mask) in enumerate(objects):
        color = np.array(CATEGORIES[kind - 1]["color"], dtype=np.float64) + rng.uniform(-15, 15, 3)
        inner = cv2.erode(mask.astype(np.uint8), kernel, iterations=1).astype(bool)
        image[mask] = color * 0.5  # dark outline, the interior is painted over it
        image[inner] = color
        segment_map[mask] = 10 + n
    image = image + 4 * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)

    segments = []
    for segment_id, category_id in [(4, 4), (5, 5)] + [
        (10 + n, kind) for n, (kind, _) in enumerate(objects)
    ]:
        visible = segment_map == segment_id
        if visible.any():
            segments.append((segment_id, category_id, visible))
    return {"image": image, "segment_map": segment_map, "segments": segments}


def _save_png(array: np.ndarray, path: str) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_split(out: str, split: str, count: int, seed: int) -> None:
    for folder in (f"images/{split}", f"panoptic_{split}", f"sem_seg_{split}"):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
    images, instance_annos, panoptic_annos = [], [], []
    for index in range(count):
        scene = _render(seed, SPLITS[split], index)
        stem = f"{index:06d}"
        image_id = index + 1
        h, w = scene["image"].shape[:2]
        _save_png(scene["image"], os.path.join(out, "images", split, stem + ".png"))
        images.append({"id": image_id, "file_name": stem + ".png", "height": h, "width": w})
        sem_seg = np.full((h, w), 255, dtype=np.uint8)
        segments_info = []
        for segment_id, category_id, visible in scene["segments"]:
            sem_seg[visible] = category_id - 1
            area, bbox = int(visible.sum()), _bbox_xywh(visible)
            segments_info.append(
                {
                    "id": segment_id,
                    "category_id": category_id,
                    "iscrowd": 0,
                    "area": area,
                    "bbox": bbox,
                }
            )
            if CATEGORIES[category_id - 1]["isthing"]:
                rle = mask_util.encode(np.asfortranarray(visible.astype(np.uint8)))
                instance_annos.append(
                    {
                        "id": len(instance_annos) + 1,
                        "image_id": image_id,
                        "category_id": category_id,
                        "iscrowd": 0,
                        "area": area,
                        "bbox": [float(v) for v in bbox],
                        "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                    }
                )
        _save_png(sem_seg, os.path.join(out, f"sem_seg_{split}", stem + ".png"))
        _save_png(
            id2rgb(scene["segment_map"]), os.path.join(out, f"panoptic_{split}", stem + ".png")
        )
        panoptic_annos.append(
            {"image_id": image_id, "file_name": stem + ".png", "segments_info": segments_info}
        )
    things = [c for c in CATEGORIES if c["isthing"]]
    instances = {
        "images": images,
        "annotations": instance_annos,
        "categories": [
            {"id": c["id"], "name": c["name"], "supercategory": "shape"} for c in things
        ],
    }
    panoptic = {
        "images": images,
        "annotations": panoptic_annos,
        "categories": [
            dict(c, supercategory="shape" if c["isthing"] else "background") for c in CATEGORIES
        ],
    }
    for name, content in ((f"instances_{split}", instances), (f"panoptic_{split}", panoptic)):
        with open(os.path.join(out, "annotations", name + ".json"), "w") as f:
            json.dump(content, f, sort_keys=True, separators=(",", ":"))


def generate_demo_dataset(
    output: str, num_train: int = 200, num_val: int = 50, seed: int = 0
) -> str:
    """Write the dataset to ``output`` (replacing it), atomically via a sibling temp folder.

    Args:
        output: destination folder.
        num_train: number of training images.
        num_val: number of validation images.
        seed: base seed; image ``i`` of a split depends only on (seed, split, i).

    Returns:
        ``output``.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train}, {num_val}")
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo_shapes_tmp_", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "annotations"))
        _write_split(tmp, "train", num_train, seed)
        _write_split(tmp, "val", num_val, seed)
        info = {"num_train": num_train, "num_val": num_val, "seed": seed}
        with open(os.path.join(tmp, DONE_MARKER), "w") as f:
            json.dump(info, f, sort_keys=True)
        if os.path.exists(output):
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    logger.info("Wrote demo dataset (%d train, %d val) to %s", num_train, num_val, output)
    return output


def ensure_demo_dataset(root: str) -> str:
    """Generate the default demo dataset at ``root`` unless it is already complete there.

    Safe when several processes (e.g. DDP ranks) ask at once: a file lock beside ``root``
    lets one of them generate while the others wait, then find the finished dataset.
    """
    root = os.path.abspath(root)
    if os.path.isfile(os.path.join(root, DONE_MARKER)):
        return root
    os.makedirs(os.path.dirname(root), exist_ok=True)
    # filelock picks the platform's lock (fcntl on POSIX, msvcrt on Windows).
    with FileLock(root + ".lock"):
        if not os.path.isfile(os.path.join(root, DONE_MARKER)):
            logger.info("Demo dataset not found at %s; generating it", root)
            generate_demo_dataset(root)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="destination folder")
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = generate_demo_dataset(args.output, args.num_train, args.num_val, args.seed)
    print(f"demo dataset written to {path}")


if __name__ == "__main__":
    main()
