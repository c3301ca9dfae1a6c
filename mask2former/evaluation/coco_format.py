"""Convert dataset records (detectron2 dataset-dict format) to a COCO instances dict, so that
pycocotools can evaluate datasets that have no COCO json file of their own.

Instance ground truth comes from each record's ``annotations`` (boxes + polygon/RLE
segmentation) or, for panoptic records, from the thing segments of ``pan_seg_file_name``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.utils.panoptic_ids import rgb2id

logger = logging.getLogger(__name__)

# detectron2's BoxMode values for absolute boxes.
_XYXY_ABS, _XYWH_ABS = 0, 1


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) binary mask -> COCO RLE with a str ``counts``."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _annotation_from_record(ann: Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    bbox = [float(v) for v in ann["bbox"]]
    mode = int(ann.get("bbox_mode", _XYWH_ABS))
    if mode == _XYXY_ABS:
        bbox = [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]]
    elif mode != _XYWH_ABS:
        raise ValueError(f"annotation bbox_mode {mode} is not XYXY_ABS (0) or XYWH_ABS (1)")
    out: dict[str, Any] = {"bbox": [round(v, 3) for v in bbox]}
    segmentation = ann.get("segmentation")
    if segmentation is None:
        out["area"] = bbox[2] * bbox[3]
    else:
        if isinstance(segmentation, list):
            rle = mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation, dict):
            rle = dict(segmentation)
            if isinstance(rle["counts"], list):  # uncompressed RLE
                rle = mask_util.frPyObjects(rle, height, width)
        else:
            raise TypeError(f"annotation segmentation of type {type(segmentation)} is unknown")
        out["area"] = float(mask_util.area(rle))
        if isinstance(segmentation, dict):
            counts = rle["counts"]
            rle["counts"] = counts.decode("ascii") if isinstance(counts, bytes) else counts
            out["segmentation"] = rle
        else:
            out["segmentation"] = segmentation
    out["iscrowd"] = int(ann.get("iscrowd", 0))
    return out


def _annotations_from_panoptic(record: Mapping[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    with Image.open(record["pan_seg_file_name"]) as image:
        ids = rgb2id(np.asarray(image.convert("RGB")))
    anns = []
    for segment in record["segments_info"]:
        if not segment.get("isthing", False):
            continue
        mask = ids == segment["id"]
        if not mask.any():
            continue
        rle = encode_mask(mask)
        x, y, w, h = mask_util.toBbox(rle).tolist()
        ann = {
            "bbox": [x, y, w, h],
            "area": float(mask.sum()),
            "segmentation": rle,
            "iscrowd": int(segment.get("iscrowd", 0)),
        }
        anns.append((int(segment["category_id"]), ann))
    return anns


def records_to_coco_dict(
    records: Sequence[Mapping[str, Any]], categories: Sequence[tuple[int, int, str]]
) -> dict[str, Any]:
    """Build a COCO instances dict from dataset records.

    Args:
        records: dataset dicts (``file_name``, ``height``, ``width``, ``image_id`` and either
            ``annotations`` or ``pan_seg_file_name`` + ``segments_info``); category ids in
            them are contiguous ids.
        categories: ``(contiguous id, id written in the json, name)`` of every thing class.
    """
    to_id = {contiguous: dataset_id for contiguous, dataset_id, _ in categories}
    coco_categories = [{"id": dataset_id, "name": name} for _, dataset_id, name in categories]
    images, annotations = [], []
    for index, record in enumerate(records):
        image = {
            "id": record.get("image_id", index),
            "width": int(record["width"]),
            "height": int(record["height"]),
            "file_name": str(record["file_name"]),
        }
        images.append(image)
        if "annotations" in record:
            anns = [
                (int(a["category_id"]), _annotation_from_record(a, image["height"], image["width"]))
                for a in record["annotations"]
            ]
        elif "pan_seg_file_name" in record:
            anns = _annotations_from_panoptic(record)
        else:
            anns = []
        for category_id, ann in anns:
            if category_id not in to_id:
                raise ValueError(
                    f"{image['file_name']}: category_id {category_id} is not a thing class "
                    f"(known contiguous ids: {sorted(to_id)})"
                )
            ann.update(
                id=len(annotations) + 1, image_id=image["id"], category_id=to_id[category_id]
            )
            annotations.append(ann)
    logger.info(f"Converted {len(images)} images / {len(annotations)} annotations to COCO format")
    return {
        "info": {"date_created": str(datetime.datetime.now()), "description": "mask2former"},
        "images": images,
        "categories": coco_categories,
        "annotations": annotations,
    }


def write_coco_json(coco_dict: Mapping[str, Any], path: str) -> None:
    """Write ``coco_dict`` to ``path`` atomically (temp file + rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(coco_dict, f)
    os.replace(tmp, path)
