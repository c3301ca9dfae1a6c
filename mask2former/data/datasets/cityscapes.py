"""Readers for the Cityscapes layout (leftImg8bit/<split>/<city>/, gtFine/<split>/<city>/)."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.data.datasets.builtin_meta import load_class_table
from mask2former.data.datasets.paths import require_path
from mask2former.data.detection_utils import BoxMode

logger = logging.getLogger(__name__)

__all__ = ["load_cityscapes_instances", "load_cityscapes_panoptic", "load_cityscapes_semantic"]

_IMAGE_SUFFIX = "leftImg8bit.png"


def _list_images(image_dir: str, dataset_name: str | None) -> list[str]:
    """Sorted ``<city>/*leftImg8bit.png`` files under ``image_dir``."""
    require_path(image_dir, dataset_name)
    files = [
        os.path.join(image_dir, city, name)
        for city in sorted(os.listdir(image_dir))
        for name in sorted(os.listdir(os.path.join(image_dir, city)))
        if name.endswith(_IMAGE_SUFFIX)
    ]
    if not files:
        raise FileNotFoundError(f"Dataset {dataset_name!r}: no *{_IMAGE_SUFFIX} under {image_dir}")
    return files


def _cityscapes_files(image_dir: str, gt_dir: str, dataset_name: str | None) -> list[tuple]:
    """(image, instanceIds, labelIds, polygons json) paths for every image, sorted."""
    require_path(gt_dir, dataset_name)
    files = []
    for image_file in _list_images(image_dir, dataset_name):
        city = os.path.basename(os.path.dirname(image_file))
        prefix = os.path.join(gt_dir, city, os.path.basename(image_file)[: -len(_IMAGE_SUFFIX)])
        files.append(
            (
                image_file,
                prefix + "gtFine_instanceIds.png",
                prefix + "gtFine_labelIds.png",
                prefix + "gtFine_polygons.json",
            )
        )
    return files


def load_cityscapes_semantic(
    image_dir: str, gt_dir: str, dataset_name: str | None = None
) -> list[dict]:
    """Records with ``file_name``, ``sem_seg_file_name`` (``*_labelTrainIds.png``, made by
    cityscapesscripts' createTrainIdLabelImgs.py), ``height`` and ``width``."""
    records = []
    for image_file, _, label_file, json_file in _cityscapes_files(image_dir, gt_dir, dataset_name):
        with open(json_file) as f:
            info = json.load(f)
        records.append(
            {
                "file_name": image_file,
                "sem_seg_file_name": label_file.replace("labelIds", "labelTrainIds"),
                "height": info["imgHeight"],
                "width": info["imgWidth"],
            }
        )
    require_path(records[0]["sem_seg_file_name"], dataset_name)
    return records


def load_cityscapes_instances(
    image_dir: str, gt_dir: str, dataset_name: str | None = None
) -> list[dict]:
    """Instance records read from ``*_gtFine_instanceIds.png`` (masks as COCO RLE).

    Ids >= 1000 are instances (``label * 1000 + n``); thing-class ids below 1000 are crowd
    regions. Category ids are contiguous over the 8 evaluated thing classes.
    """
    things = [c for c in load_class_table("cityscapes_19") if c["isthing"]]
    label_to_contiguous = {c["id"]: i for i, c in enumerate(things)}
    records = []
    for image_file, instance_file, _, _ in _cityscapes_files(image_dir, gt_dir, dataset_name):
        inst_image = np.asarray(Image.open(require_path(instance_file, dataset_name)))
        record = {
            "file_name": image_file,
            "image_id": os.path.basename(image_file),
            "height": inst_image.shape[0],
            "width": inst_image.shape[1],
        }
        annos = []
        for instance_id in np.unique(inst_image[inst_image >= 24]):
            label_id = int(instance_id // 1000 if instance_id >= 1000 else instance_id)
            if label_id not in label_to_contiguous:
                continue
            mask = np.asfortranarray((inst_image == instance_id).astype(np.uint8))
            ys, xs = np.nonzero(mask)
            if xs.max() <= xs.min() or ys.max() <= ys.min():
                continue
            annos.append(
                {
                    "iscrowd": int(instance_id < 1000),
                    "category_id": label_to_contiguous[label_id],
                    "bbox": [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())],
                    "bbox_mode": BoxMode.XYXY_ABS,
                    "segmentation": mask_util.encode(mask),
                }
            )
        record["annotations"] = annos
        records.append(record)
    return records


def load_cityscapes_panoptic(
    image_dir: str, gt_dir: str, gt_json: str, meta: dict, dataset_name: str | None = None
) -> list[dict]:
    """Panoptic records from cityscapesscripts' createPanopticImgs.py output."""
    require_path(gt_json, dataset_name)
    with open(gt_json) as f:
        json_info = json.load(f)
    images = {
        os.path.basename(f)[: -len("_" + _IMAGE_SUFFIX)]: f
        for f in _list_images(image_dir, dataset_name)
    }
    things = meta["thing_dataset_id_to_contiguous_id"]
    stuff = meta["stuff_dataset_id_to_contiguous_id"]
    records = []
    for ann in json_info["annotations"]:
        if ann["image_id"] not in images:
            raise FileNotFoundError(
                f"Dataset {dataset_name!r}: no image for annotation {ann['file_name']} "
                f"in {image_dir}"
            )
        image_file = images[ann["image_id"]]
        segments = []
        for seg in ann["segments_info"]:
            seg = dict(seg)
            cat = seg["category_id"]
            seg["category_id"] = things[cat] if cat in things else stuff[cat]
            segments.append(seg)
        records.append(
            {
                "file_name": image_file,
                "image_id": ann["image_id"],
                "sem_seg_file_name": image_file.replace("leftImg8bit", "gtFine").split(".")[0]
                + "_labelTrainIds.png",
                "pan_seg_file_name": os.path.join(gt_dir, ann["file_name"]),
                "segments_info": segments,
            }
        )
    if not records:
        raise ValueError(f"Dataset {dataset_name!r}: no annotations in {gt_json}")
    require_path(records[0]["sem_seg_file_name"], dataset_name)
    require_path(records[0]["pan_seg_file_name"], dataset_name)
    return records
