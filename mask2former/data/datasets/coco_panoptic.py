"""Reader for COCO-panoptic annotations (PNG id maps + JSON segments_info)."""

from __future__ import annotations

import os

from mask2former.data.datasets.paths import read_json, require_path

__all__ = ["load_coco_panoptic_json", "panoptic_image_path"]


def _convert_segment(segment: dict, meta: dict, json_file: str, png_name: str) -> dict:
    category_id = segment["category_id"]
    things = meta["thing_dataset_id_to_contiguous_id"]
    stuff = meta["stuff_dataset_id_to_contiguous_id"]
    if category_id in things:
        segment["category_id"], segment["isthing"] = things[category_id], True
    elif category_id in stuff:
        segment["category_id"], segment["isthing"] = stuff[category_id], False
    else:
        known = sorted(things.keys() | stuff.keys())
        raise ValueError(
            f"{json_file}: segment {segment.get('id')} of {png_name} has category_id="
            f"{category_id}, which is not among the dataset's {len(known)} categories "
            f"(ids {known[0]}..{known[-1]})."
        )
    return segment


def panoptic_image_path(ann: dict, images: dict, image_root: str, image_ext: str | None) -> str:
    """The image of a panoptic annotation: ``image_root/<PNG stem><image_ext>``, or with
    ``image_ext=None`` the ``file_name`` of its entry in the JSON's ``images``."""
    if image_ext is not None:
        return os.path.join(image_root, os.path.splitext(ann["file_name"])[0] + image_ext)
    image = images.get(ann["image_id"])
    if image is None:
        raise ValueError(
            f"panoptic annotation {ann['file_name']} has image_id {ann['image_id']!r}, which "
            "is not in the JSON's 'images' (or give image_ext)"
        )
    return os.path.join(image_root, image["file_name"])


def load_coco_panoptic_json(
    json_file: str,
    image_dir: str,
    gt_dir: str,
    meta: dict,
    *,
    semseg_dir: str | None = None,
    image_ext: str | None = ".jpg",
    dataset_name: str | None = None,
) -> list[dict]:
    """Read a COCO-panoptic JSON into records.

    Each record has ``file_name`` (see :func:`panoptic_image_path`), ``image_id``,
    ``pan_seg_file_name``, ``segments_info`` (category ids mapped to contiguous ids, plus
    ``isthing``), and ``sem_seg_file_name`` when ``semseg_dir`` is given.

    Args:
        json_file: panoptic JSON.
        image_dir: image folder.
        gt_dir: folder of panoptic PNGs.
        meta: has ``thing_dataset_id_to_contiguous_id`` and ``stuff_dataset_id_to_contiguous_id``.
        semseg_dir: folder of semantic PNGs with the same names as the panoptic PNGs.
        image_ext: extension of the images; None takes their names from the JSON's ``images``.
        dataset_name: used in error messages.
    """
    json_info = read_json(json_file, dataset_name)
    images = {img["id"]: img for img in json_info.get("images", [])}
    records = []
    for ann in json_info["annotations"]:
        record = {
            "file_name": panoptic_image_path(ann, images, image_dir, image_ext),
            "image_id": ann["image_id"],
            "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
            "segments_info": [
                _convert_segment(dict(s), meta, json_file, ann["file_name"])
                for s in ann["segments_info"]
            ],
        }
        if ann["image_id"] in images:
            record["height"] = images[ann["image_id"]]["height"]
            record["width"] = images[ann["image_id"]]["width"]
        if semseg_dir is not None:
            record["sem_seg_file_name"] = os.path.join(semseg_dir, ann["file_name"])
        records.append(record)
    if not records:
        raise ValueError(f"Dataset {dataset_name!r}: no annotations in {json_file}")
    for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
        if key in records[0]:
            require_path(records[0][key], dataset_name)
    return records
