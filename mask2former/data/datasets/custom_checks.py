"""Checks of a user's dataset files at registration, with errors that name the files.

Each ``check_*`` function reads the annotation files (and the label PNGs, whose pixel values
are what training trusts), and raises ``ValueError`` / ``FileNotFoundError`` naming the file
and what was expected. Problems that do not stop training (images without annotations,
segments without pixels) are logged as warnings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

from mask2former.data.datasets.coco_panoptic import panoptic_image_path
from mask2former.data.datasets.paths import read_json
from mask2former.utils.panoptic_ids import rgb2id

logger = logging.getLogger(__name__)

__all__ = ["check_coco_instances", "check_coco_panoptic", "check_sem_seg", "list_by_stem"]

_SHOWN = 5  # file names listed in an error before "... and N more"
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def _some(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _image_size(path: str) -> tuple[int, int]:
    """(height, width) as read_image will decode it (EXIF rotation applied); header only."""
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    return height, width


def list_by_stem(folder: str, ext: str, name: str) -> dict[str, str]:
    """``{file stem: path}`` of the files ending with ``ext`` in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` is not a directory, or holds no such file.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Dataset {name!r}: folder {folder} does not exist")
    ext = ext if ext.startswith(".") else "." + ext
    files = {
        os.path.splitext(f)[0]: os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.endswith(ext)
    }
    if not files:
        raise FileNotFoundError(f"Dataset {name!r}: no *{ext} files in {folder}")
    return files


def _require_keys(content: object, keys: tuple[str, ...], json_file: str) -> dict:
    if not isinstance(content, dict):
        raise ValueError(f"{json_file}: expected a JSON object, got {type(content).__name__}")
    missing = [k for k in keys if not isinstance(content.get(k), list)]
    if missing:
        raise ValueError(f"{json_file}: missing the list(s) {missing}; has keys {sorted(content)}")
    return content


def _check_categories(categories: list[dict], json_file: str, panoptic: bool) -> list[dict]:
    if not categories:
        raise ValueError(f"{json_file}: 'categories' is empty")
    fields = ("id", "name", "isthing") if panoptic else ("id", "name")
    for cat in categories:
        missing = [k for k in fields if k not in cat]
        if missing:
            raise ValueError(f"{json_file}: category {cat} lacks {missing}")
    ids = [c["id"] for c in categories]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{json_file}: category ids {duplicates} appear more than once")
    return categories


def _check_sizes(paths_and_sizes: list[tuple[str, tuple[int, int]]], json_file: str) -> None:
    for path, expected in paths_and_sizes:
        actual = _image_size(path)
        if actual != expected:
            raise ValueError(
                f"{json_file}: {path} is {actual[1]}x{actual[0]} (width x height) but the JSON "
                f"says {expected[1]}x{expected[0]}"
            )


def check_coco_instances(json_file: str, image_root: str, name: str) -> list[dict]:
    """Check a COCO instances JSON against its image folder.

    Checks: the ``images``/``annotations``/``categories`` lists, unique category ids, every
    image file present with the JSON's size, every annotation on a listed image and of a
    listed category.

    Returns:
        The JSON's ``categories``.
    """
    content = _require_keys(
        read_json(json_file, name), ("images", "annotations", "categories"), json_file
    )
    categories = _check_categories(content["categories"], json_file, panoptic=False)
    images = {img["id"]: img for img in content["images"]}
    if not images:
        raise ValueError(f"{json_file}: 'images' is empty")
    paths = {i: os.path.join(image_root, img["file_name"]) for i, img in images.items()}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"Dataset {name!r}: {len(missing)} of the {len(paths)} images listed in {json_file} "
            f"are not in {image_root}: {_some(missing)}"
        )
    _check_sizes(
        [(paths[i], (img["height"], img["width"])) for i, img in images.items()], json_file
    )
    known = {c["id"] for c in categories}
    annotated = set()
    for ann in content["annotations"]:
        if ann.get("image_id") not in images:
            raise ValueError(
                f"{json_file}: annotation {ann.get('id')} refers to image_id "
                f"{ann.get('image_id')!r}, which is not in 'images'"
            )
        if ann.get("category_id") not in known:
            raise ValueError(
                f"{json_file}: annotation {ann.get('id')} of {paths[ann['image_id']]} has "
                f"category_id={ann.get('category_id')!r}; 'categories' has ids {sorted(known)}"
            )
        annotated.add(ann["image_id"])
    unannotated = [paths[i] for i in images if i not in annotated]
    if unannotated:
        logger.warning(
            "Dataset %r: %d of %d images have no annotation (training skips them while "
            "DATALOADER.FILTER_EMPTY_ANNOTATIONS is True): %s",
            name,
            len(unannotated),
            len(images),
            _some(unannotated),
        )
    return categories


def check_coco_panoptic(
    json_file: str,
    image_root: str,
    panoptic_root: str,
    name: str,
    *,
    image_ext: str | None = None,
    sem_seg_root: str | None = None,
) -> list[dict]:
    """Check a COCO panoptic JSON against its image and PNG folders.

    Checks: unique category ids with ``isthing``, every image and segment PNG present (and
    semantic PNG when ``sem_seg_root``), known segment categories, and that each PNG's
    segment ids (``R + 256 G + 256^2 B``) are exactly 0 and its ``segments_info`` ids.

    Returns:
        The JSON's ``categories``.
    """
    content = _require_keys(read_json(json_file, name), ("annotations", "categories"), json_file)
    categories = _check_categories(content["categories"], json_file, panoptic=True)
    images = {img["id"]: img for img in content.get("images", [])}
    known = {c["id"] for c in categories}
    if not content["annotations"]:
        raise ValueError(f"{json_file}: 'annotations' is empty")
    for ann in content["annotations"]:
        png = os.path.join(panoptic_root, ann["file_name"])
        needed = [png, panoptic_image_path(ann, images, image_root, image_ext)]
        if sem_seg_root is not None:
            needed.append(os.path.join(sem_seg_root, ann["file_name"]))
        missing = [p for p in needed if not os.path.isfile(p)]
        if missing:
            hint = (
                f" (images are found as <PNG stem>{image_ext}; is image_ext right?)"
                if needed[1] in missing and image_ext is not None
                else ""
            )
            raise FileNotFoundError(
                f"Dataset {name!r}: {json_file} lists {ann['file_name']}, but {missing} "
                f"do(es) not exist{hint}"
            )
        segment_ids = set()
        for segment in ann["segments_info"]:
            if segment["category_id"] not in known:
                raise ValueError(
                    f"{json_file}: segment {segment['id']} of {ann['file_name']} has "
                    f"category_id={segment['category_id']}; 'categories' has ids {sorted(known)}"
                )
            segment_ids.add(segment["id"])
        with Image.open(png) as image:
            if image.mode != "RGB":
                raise ValueError(
                    f"{png} has mode {image.mode}; panoptic PNGs are RGB with segment id "
                    "R + 256 G + 256^2 B"
                )
            ids_in_png = set(np.unique(rgb2id(np.asarray(image))).tolist()) - {0}
        if ids_in_png - segment_ids:
            raise ValueError(
                f"{png} has segment ids {sorted(ids_in_png - segment_ids)[:10]} that are not in "
                f"its segments_info in {json_file} (ids {sorted(segment_ids)[:10]}); is the PNG "
                "encoded as R + 256 G + 256^2 B?"
            )
        if segment_ids - ids_in_png:
            logger.warning(
                "%s: segments %s of %s cover no pixel",
                json_file,
                sorted(segment_ids - ids_in_png),
                png,
            )
    return categories


def check_sem_seg(
    image_root: str,
    gt_root: str,
    name: str,
    *,
    num_classes: int,
    ignore_label: int,
    image_ext: str,
    gt_ext: str,
) -> int:
    """Check a folder of images against a folder of label maps (paired by file stem).

    Checks: the same stems on both sides, single-channel label maps of the image's size, and
    label values in ``0..num_classes-1`` or ``ignore_label``.

    Returns:
        The number of image/label pairs.
    """
    images = list_by_stem(image_root, image_ext, name)
    labels = list_by_stem(gt_root, gt_ext, name)
    if images.keys() != labels.keys():
        no_label = [images[s] for s in images.keys() - labels.keys()]
        no_image = [labels[s] for s in labels.keys() - images.keys()]
        problems = []
        if no_label:
            problems.append(
                f"{len(no_label)} images have no *{gt_ext} in {gt_root}: {_some(no_label)}"
            )
        if no_image:
            problems.append(
                f"{len(no_image)} label maps have no *{image_ext} in {image_root}: "
                f"{_some(no_image)}"
            )
        raise FileNotFoundError(
            f"Dataset {name!r}: images and label maps are paired by file stem; "
            + "; ".join(problems)
        )
    allowed = set(range(num_classes)) | {ignore_label}
    for stem in sorted(labels):
        with Image.open(labels[stem]) as label_image:
            if label_image.mode not in ("L", "P", "I", "I;16", "1"):
                raise ValueError(
                    f"{labels[stem]} has mode {label_image.mode}; a label map is single-channel "
                    "(class id per pixel), not a colour image"
                )
            values = np.asarray(label_image)
        if _image_size(images[stem]) != values.shape[:2]:
            raise ValueError(
                f"{labels[stem]} is {values.shape[1]}x{values.shape[0]} but its image "
                f"{images[stem]} is {_image_size(images[stem])[1]}x{_image_size(images[stem])[0]}"
            )
        if values.min() < 0:  # a signed 32-bit map
            raise ValueError(f"{labels[stem]} has negative label values")
        present = np.flatnonzero(np.bincount(values.ravel()))  # faster than np.unique
        bad = sorted(set(present.tolist()) - allowed)
        if bad:
            raise ValueError(
                f"{labels[stem]} has label values {bad[:10]}; expected class ids 0.."
                f"{num_classes - 1} ({num_classes} classes) or ignore_label {ignore_label}"
            )
    return len(labels)
