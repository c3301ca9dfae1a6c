"""ADE20K-150 panoptic annotations in COCO panoptic format, from the challenge's PNG labels.

Reads ``$DETECTRON2_DATASETS/ADEChallengeData2016/``:

- ``images/{training,validation}/*.jpg``
- ``annotations/{training,validation}/<stem>.png``: 150-class semantic labels (0 = other)
- ``annotations_instance/{training,validation}/<stem>.png``: R = instance category (1..100,
  see ``class_tables/ade20k_instance_catid_mapping.json``), G = instance id (0 = none)

and writes ``ade20k_panoptic_{train,val}.json`` and ``ade20k_panoptic_{train,val}/<stem>.png``
next to them. As in the original, stuff segments come from the semantic labels of the stuff
classes, things from the instance labels; things are pasted over stuff, and a stuff segment's
``area`` and ``bbox`` are those of its semantic-label region before that paste.
"""

from __future__ import annotations

import argparse
import json
import os
import zlib
from pathlib import Path

import numpy as np
from _parallel import exit_on_failures, run_parallel
from PIL import Image

from mask2former.data.datasets import load_class_table
from mask2former.utils.file_failures import FILE_ERRORS, FileFailures

ADE_DIR = "ADEChallengeData2016"
SPLITS = (("train", "training"), ("val", "validation"))
# The registration palette repeats road's color for "skyscraper" (48); the original's
# panoptic ground truth uses this one, which keeps every stuff segment id distinct.
_GT_COLOR_OVERRIDES = {48: [140, 140, 200]}


def panoptic_categories() -> list[dict]:
    """The 150 categories of the panoptic JSON (ids 0..149, things = the 100 instance classes)."""
    cats = load_class_table("ade20k_panoptic_150")
    for cat in cats:
        cat["color"] = _GT_COLOR_OVERRIDES.get(cat["id"], cat["color"])
    return cats


def instance_category_map() -> dict[int, int]:
    """ADE instance category (R channel, 1..100) -> panoptic/instance category id (0..149)."""
    return {
        row["instance_id"]: row["category_id"]
        for row in load_class_table("ade20k_instance_catid_mapping")
    }


def split_files(root: str, dirname: str, label_dirs: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``(image, label_1, ...)`` paths for every ``images/<dirname>/*.jpg`` of the split.

    Raises:
        FileNotFoundError: naming the missing folder or label file and ``DETECTRON2_DATASETS``.
    """
    ade = Path(root) / ADE_DIR
    hint = f"set --root or DETECTRON2_DATASETS (root is {root!r}); see datasets/README.md"
    for sub in ("images", *label_dirs):
        if not (ade / sub / dirname).is_dir():
            raise FileNotFoundError(f"{ade / sub / dirname} not found; {hint}")
    images = sorted((ade / "images" / dirname).glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"{ade / 'images' / dirname} has no *.jpg images; {hint}")
    rows = [
        (str(img), *(str(ade / d / dirname / (img.stem + ".png")) for d in label_dirs))
        for img in images
    ]
    missing = [p for row in rows for p in row[1:] if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} label files are missing, e.g. {missing[0]}; {hint}"
        )
    return rows


def read_label(path: str, shape: tuple[int, int], channels: int) -> np.ndarray:
    """An 8-bit label PNG as an (H, W) or (H, W, C) array, checked against the image size."""
    try:
        with Image.open(path) as image:
            label = np.asarray(image)
    except FILE_ERRORS as e:
        raise ValueError(f"{path}: cannot read the label PNG ({type(e).__name__}: {e})") from e
    expected = shape if channels == 1 else (*shape, channels)
    if label.dtype != np.uint8 or label.shape[: len(expected)] != expected:
        raise ValueError(
            f"{path}: expected uint8 labels of shape {expected} (the image's size), "
            f"got {label.dtype} {label.shape}"
        )
    return label[..., :channels] if channels > 1 else label


def instance_masks(
    path: str, shape: tuple[int, int], cat_map: dict[int, int]
) -> list[tuple[int, np.ndarray]]:
    """``(category_id, mask (H, W) bool)`` per instance of an ADE instance PNG, by instance id.

    Raises:
        ValueError: an instance spans several categories or has one outside ``cat_map``.
    """
    label = read_label(path, shape, 3)
    categories, instance_ids = label[..., 0], label[..., 1]
    out = []
    for inst in np.unique(instance_ids):
        if inst == 0:
            continue
        mask = instance_ids == inst
        cats = np.unique(categories[mask])
        if len(cats) != 1 or int(cats[0]) not in cat_map:
            raise ValueError(
                f"{path}: instance {inst} has instance categories {cats.tolist()}; expected "
                f"exactly one of 1..{max(cat_map)}"
            )
        out.append((cat_map[int(cats[0])], mask))
    return out


def mask_bbox(mask: np.ndarray) -> list[int]:
    """``[x, y, w, h]`` of the pixels set in a non-empty (H, W) mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


class SegmentColors:
    """Unique panoptic colors (and ids = R + 256 G + 256^2 B), as panopticapi's IdGenerator.

    A stuff class gets its own color; a thing's first instance its class color, later ones a
    random color within 30 of it per channel. Seeded, so an image always gets the same ids.
    """

    def __init__(self, categories: dict[int, dict], seed: int) -> None:
        self._cats = categories
        self._rng = np.random.default_rng(seed)
        self._taken = {(0, 0, 0)} | {
            tuple(c["color"]) for c in categories.values() if not c["isthing"]
        }

    def __call__(self, category_id: int) -> tuple[int, tuple[int, int, int]]:
        cat = self._cats[category_id]
        color = tuple(cat["color"])
        if cat["isthing"]:
            base = np.asarray(cat["color"])
            while color in self._taken:
                jitter = self._rng.integers(-30, 31, size=3)
                color = tuple(int(v) for v in np.clip(base + jitter, 0, 255))
            self._taken.add(color)
        return color[0] + 256 * color[1] + 256 * 256 * color[2], color


def convert(
    image_file: str,
    semantic_file: str,
    instance_file: str,
    out_dir: str,
    categories: dict[int, dict],
    cat_map: dict[int, int],
) -> tuple[dict, dict]:
    """Write one panoptic PNG; return its ``images`` and ``annotations`` JSON entries."""
    stem = Path(image_file).stem
    with Image.open(image_file) as img:
        width, height = img.size
    # 0 ("other") wraps to 255 and is skipped, as are the thing classes.
    semantic = read_label(semantic_file, (height, width), 1) - np.uint8(1)
    if semantic[semantic != 255].max(initial=0) >= len(categories):
        raise ValueError(f"{semantic_file}: expected labels 0..{len(categories)}")
    things = instance_masks(instance_file, (height, width), cat_map)

    colors = SegmentColors(categories, seed=zlib.crc32(stem.encode()))
    panoptic = np.zeros((height, width, 3), dtype=np.uint8)
    segments = []
    stuff = []
    for value in np.unique(semantic).tolist():
        if value == 255 or categories[value]["isthing"]:
            continue
        stuff.append((value, semantic == value))
    for category_id, mask in stuff + things:
        segment_id, color = colors(category_id)
        panoptic[mask] = color
        segments.append(
            {
                "id": segment_id,
                "category_id": category_id,
                "area": int(mask.sum()),
                "bbox": mask_bbox(mask),
                "iscrowd": 0,
            }
        )
    Image.fromarray(panoptic).save(os.path.join(out_dir, stem + ".png"))
    image = {"id": stem, "file_name": stem + ".jpg", "width": width, "height": height}
    annotation = {"image_id": stem, "file_name": stem + ".png", "segments_info": segments}
    return image, annotation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="folder holding ADEChallengeData2016/ (default: $DETECTRON2_DATASETS or ./datasets)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    categories = panoptic_categories()
    by_id = {c["id"]: c for c in categories}
    cat_map = instance_category_map()
    failures, total = FileFailures("images"), 0
    for name, dirname in SPLITS:
        rows = split_files(args.root, dirname, ("annotations", "annotations_instance"))
        out_dir = os.path.join(args.root, ADE_DIR, f"ade20k_panoptic_{name}")
        os.makedirs(out_dir, exist_ok=True)
        items = [(*row, out_dir, by_id, cat_map) for row in rows]
        results = run_parallel(convert, items, f"ADE20K panoptic {name}", failures, args.workers)
        total += len(items)
        out = {
            "images": [image for image, _ in results],
            "annotations": [annotation for _, annotation in results],
            "categories": categories,
        }
        with open(os.path.join(args.root, ADE_DIR, f"ade20k_panoptic_{name}.json"), "w") as f:
            json.dump(out, f)
    exit_on_failures(failures, total)


if __name__ == "__main__":
    main()
