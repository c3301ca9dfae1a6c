"""A small labelled dataset the project has not seen: ellipses and squares (things) over
striped bands (stuff) on noise (stuff), in several image sizes.

Layout written by :func:`write_unseen_dataset` under ``root``::

    images/<split>/<stem>.jpg        RGB images
    semantic/<split>/<stem>.png      class ids of CLASSES (255 = ignore, a corner patch)
    instances/<split>/<stem>.png     instance ids (0 = none)
    coco/<split>.json                COCO instances, polygons, category ids 17 and 5
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
from PIL import Image

CLASSES = ["background", "stripes", "ellipse", "square"]
THING_CLASSES = ["ellipse", "square"]
# Non-contiguous, unsorted ids in the COCO JSON (contiguous order is by id: square, ellipse).
COCO_IDS = {"ellipse": 17, "square": 5}
SIZES = [(72, 96), (96, 72), (80, 88)]  # (height, width)
IGNORE_LABEL = 255


def _draw_image(rng: np.random.Generator, height: int, width: int):
    semantic = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint8)
    image = rng.integers(0, 90, (height, width, 3)).astype(np.uint8)
    top = int(rng.integers(height // 2, height - 16))
    band = np.zeros((height, width), bool)
    band[top : top + 14] = True
    stripes = (np.add.outer(np.arange(height), np.arange(width)) // 3) % 2 == 0
    semantic[band] = 1
    image[band & stripes] = (200, 200, 60)
    image[band & ~stripes] = (60, 60, 200)
    for instance_id in range(1, int(rng.integers(1, 4)) + 1):
        mask = np.zeros((height, width), np.uint8)
        cx, cy = int(rng.integers(16, width - 16)), int(rng.integers(14, top))
        size = int(rng.integers(7, 12))
        if instance_id % 2:
            cv2.ellipse(mask, (cx, cy), (size + 3, size - 3), 30.0, 0, 360, 1, -1)
            label, color = 2, (230, 80, 80)
        else:
            cv2.rectangle(mask, (cx - size, cy - size), (cx + size, cy + size), 1, -1)
            label, color = 3, (80, 230, 120)
        semantic[mask > 0] = label
        instances[mask > 0] = instance_id
        image[mask > 0] = color
    semantic[:4, :4] = IGNORE_LABEL
    instances[:4, :4] = 0
    noise = rng.integers(-20, 20, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), semantic, instances


def _coco_annotations(semantic: np.ndarray, instances: np.ndarray, image_id: int, first_id: int):
    anns = []
    for instance_id in np.unique(instances[instances > 0]):
        mask = (instances == instance_id).astype(np.uint8)
        label = int(np.bincount(semantic[mask > 0]).argmax())
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
        x, y, w, h = cv2.boundingRect(mask)
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": image_id,
                "category_id": COCO_IDS[CLASSES[label]],
                "segmentation": polygons,
                "area": float(mask.sum()),
                "bbox": [x, y, w, h],
                "iscrowd": 0,
            }
        )
    return anns


def write_unseen_dataset(root: str, splits: dict[str, int], seed: int = 3) -> str:
    """Write ``{split: number of images}`` under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        folders = {k: os.path.join(root, k, split) for k in ("images", "semantic", "instances")}
        for folder in folders.values():
            os.makedirs(folder, exist_ok=True)
        coco = {
            "images": [],
            "annotations": [],
            "categories": [{"id": COCO_IDS[n], "name": n} for n in THING_CLASSES],
        }
        for index in range(count):
            height, width = SIZES[index % len(SIZES)]
            image, semantic, instances = _draw_image(rng, height, width)
            stem = f"{split}_{index:03d}"
            Image.fromarray(image).save(os.path.join(folders["images"], stem + ".jpg"), quality=95)
            Image.fromarray(semantic).save(os.path.join(folders["semantic"], stem + ".png"))
            Image.fromarray(instances).save(os.path.join(folders["instances"], stem + ".png"))
            image_id = 100 + index  # not 0-based, not contiguous with the annotation ids
            coco["images"].append(
                {"id": image_id, "file_name": stem + ".jpg", "height": height, "width": width}
            )
            first = len(coco["annotations"]) + 1
            coco["annotations"] += _coco_annotations(semantic, instances, image_id, first)
        os.makedirs(os.path.join(root, "coco"), exist_ok=True)
        with open(os.path.join(root, "coco", f"{split}.json"), "w") as f:
            json.dump(coco, f)
    return root
