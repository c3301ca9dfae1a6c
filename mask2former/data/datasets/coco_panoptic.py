"""Reader for COCO-panoptic annotations (PNG id maps + JSON segments_info)."""

from __future__ import annotations

import os

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.paths import read_json, require_path

__all__ = ["load_coco_panoptic_json", "register_coco_panoptic"]


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


def load_coco_panoptic_json(
    json_file: str,
    image_dir: str,
    gt_dir: str,
    meta: dict,
    *,
    semseg_dir: str | None = None,
    image_ext: str = ".jpg",
    dataset_name: str | None = None,
) -> list[dict]:
    """Read a COCO-panoptic JSON into records.

    Each record has ``file_name`` (``image_dir/<stem><image_ext>``), ``image_id``,
    ``pan_seg_file_name``, ``segments_info`` (category ids mapped to contiguous ids, plus
    ``isthing``), and ``sem_seg_file_name`` when ``semseg_dir`` is given.

    Args:
        json_file: panoptic JSON.
        image_dir: image folder.
        gt_dir: folder of panoptic PNGs.
        meta: has ``thing_dataset_id_to_contiguous_id`` and ``stuff_dataset_id_to_contiguous_id``.
        semseg_dir: folder of semantic PNGs with the same names as the panoptic PNGs.
        image_ext: extension of the images.
        dataset_name: used in error messages.
    """
    json_info = read_json(json_file, dataset_name)
    image_sizes = {img["id"]: (img["height"], img["width"]) for img in json_info.get("images", [])}
    records = []
    for ann in json_info["annotations"]:
        stem = os.path.splitext(ann["file_name"])[0]
        record = {
            "file_name": os.path.join(image_dir, stem + image_ext),
            "image_id": ann["image_id"],
            "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
            "segments_info": [
                _convert_segment(dict(s), meta, json_file, ann["file_name"])
                for s in ann["segments_info"]
            ],
        }
        if ann["image_id"] in image_sizes:
            record["height"], record["width"] = image_sizes[ann["image_id"]]
        if semseg_dir is not None:
            record["sem_seg_file_name"] = os.path.join(semseg_dir, ann["file_name"])
        records.append(record)
    if not records:
        raise ValueError(f"Dataset {dataset_name!r}: no annotations in {json_file}")
    for key in ("file_name", "pan_seg_file_name", "sem_seg_file_name"):
        if key in records[0]:
            require_path(records[0][key], dataset_name)
    return records


def register_coco_panoptic(
    name: str,
    metadata: dict,
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    *,
    sem_seg_root: str | None = None,
    instances_json: str | None = None,
    evaluator_type: str = "coco_panoptic_seg",
    ignore_label: int = 255,
    image_ext: str = ".jpg",
) -> None:
    """Register a COCO-panoptic-format dataset (with semantic PNGs when ``sem_seg_root``)."""
    DatasetCatalog.register(
        name,
        lambda: load_coco_panoptic_json(
            panoptic_json,
            image_root,
            panoptic_root,
            metadata,
            semseg_dir=sem_seg_root,
            image_ext=image_ext,
            dataset_name=name,
        ),
    )
    extra = {"sem_seg_root": sem_seg_root} if sem_seg_root is not None else {}
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        json_file=instances_json,
        evaluator_type=evaluator_type,
        ignore_label=ignore_label,
        label_divisor=1000,
        **extra,
        **metadata,
    )
