"""Large-scale-jitter (LSJ) training mappers: "coco_instance_lsj" and "coco_panoptic_lsj".

Augmentation: optional flip (INPUT.RANDOM_FLIP), ResizeScale(INPUT.MIN_SCALE, INPUT.MAX_SCALE)
of an INPUT.IMAGE_SIZE square, then FixedSizeCrop to that square (padding bottom/right).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from mask2former.config import configurable
from mask2former.data import detection_utils as utils
from mask2former.data import transforms as T
from mask2former.data.dataset_mappers.common import image_to_tensor, masks_to_tensor
from mask2former.structures import Boxes, Instances, masks_to_boxes

logger = logging.getLogger(__name__)

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "build_lsj_augmentations",
]

_FLIP_CHOICES = ("none", "horizontal", "vertical")


def build_lsj_augmentations(cfg, is_train: bool = True) -> list[T.Augmentation]:
    """[RandomFlip], ResizeScale, FixedSizeCrop from INPUT.* (training only)."""
    if not is_train:
        raise ValueError("LSJ augmentations are for training only (got is_train=False)")
    size = cfg.INPUT.IMAGE_SIZE
    flip = cfg.INPUT.RANDOM_FLIP
    if flip not in _FLIP_CHOICES:
        raise ValueError(f"INPUT.RANDOM_FLIP must be one of {_FLIP_CHOICES}, got {flip!r}")
    augs: list[T.Augmentation] = []
    if flip != "none":
        augs.append(T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical"))
    augs.append(
        T.ResizeScale(
            min_scale=cfg.INPUT.MIN_SCALE,
            max_scale=cfg.INPUT.MAX_SCALE,
            target_height=size,
            target_width=size,
        )
    )
    augs.append(T.FixedSizeCrop(crop_size=(size, size)))
    return augs


class _LSJMapperBase:
    @configurable
    def __init__(self, is_train: bool = True, *, tfm_gens: list, image_format: str) -> None:
        """
        Args:
            is_train: when False only the image is produced (annotations dropped).
            tfm_gens: augmentations applied in order.
            image_format: format passed to :func:`read_image` (INPUT.FORMAT).
        """
        self.is_train = is_train
        self.tfm_gens = tfm_gens
        self.image_format = image_format
        logger.info("[%s] Augmentations used in training: %s", type(self).__name__, tfm_gens)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "tfm_gens": build_lsj_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
        }

    def _read_and_augment(self, dataset_dict: dict):
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        raw_size = image.shape[:2]
        image, transforms = T.apply_augmentations(self.tfm_gens, image)
        dataset_dict["image"] = image_to_tensor(image)
        return raw_size, image, transforms


class COCOInstanceNewBaselineDatasetMapper(_LSJMapperBase):
    """LSJ mapper for instance annotations (polygons or RLE).

    Output keys: ``image`` (C, S, S) uint8, ``padding_mask`` (S, S) bool (True on padding), and
    in training ``instances`` with ``gt_classes`` (N,) int64, ``gt_masks`` (N, S, S) bool and
    ``gt_boxes`` (Boxes); instances emptied by the crop are removed.
    """

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        raw_size, image, transforms = self._read_and_augment(dataset_dict)
        valid = np.ones(raw_size, dtype=np.uint8)
        dataset_dict["padding_mask"] = torch.as_tensor(
            ~transforms.apply_segmentation(valid).astype(bool)
        )
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" not in dataset_dict:
            return dataset_dict
        height, width = image.shape[:2]
        annos = [
            utils.transform_instance_annotations(obj, transforms, (height, width))
            for obj in dataset_dict.pop("annotations")
            if obj.get("iscrowd", 0) == 0
        ]
        masks, boxes = [], []
        for obj in annos:
            segm = obj["segmentation"]
            mask = utils.segmentation_to_mask(segm, height, width)
            if isinstance(segm, list):  # box from the polygon vertices, as PolygonMasks do
                points = np.concatenate([np.asarray(p).reshape(-1, 2) for p in segm] or [[]])
                points = points.reshape(-1, 2)
                box = [*points.min(0), *points.max(0)] if len(points) else [0.0, 0.0, 0.0, 0.0]
            else:
                box = masks_to_boxes(torch.from_numpy(mask)[None])[0].tolist()
            masks.append(mask)
            boxes.append(box)
        instances = Instances((height, width))
        instances.gt_classes = torch.tensor(
            [int(o["category_id"]) for o in annos], dtype=torch.int64
        )
        instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        instances.gt_masks = masks_to_tensor(masks, height, width)
        dataset_dict["instances"] = utils.filter_empty_instances(instances)
        return dataset_dict


class COCOPanopticNewBaselineDatasetMapper(_LSJMapperBase):
    """LSJ mapper for COCO-panoptic annotations.

    Output keys: ``image`` (C, S, S) uint8 and in training ``instances`` with ``gt_classes``
    (N,) int64, ``gt_masks`` (N, S, S) bool and ``gt_boxes`` (Boxes from the masks).
    """

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        _, image, transforms = self._read_and_augment(dataset_dict)
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "pan_seg_file_name" not in dataset_dict:
            return dataset_dict
        pan_seg = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        pan_seg = utils.rgb2id(transforms.apply_segmentation(pan_seg))
        height, width = image.shape[:2]
        classes, masks = [], []
        for segment in dataset_dict["segments_info"]:
            if not segment.get("iscrowd", 0):
                classes.append(segment["category_id"])
                masks.append(pan_seg == segment["id"])
        masks_t = masks_to_tensor(masks, height, width)
        instances = Instances((height, width))
        instances.gt_classes = torch.tensor(np.array(classes, dtype=np.int64), dtype=torch.int64)
        instances.gt_masks = masks_t
        instances.gt_boxes = Boxes(masks_to_boxes(masks_t))
        dataset_dict["instances"] = instances
        return dataset_dict
