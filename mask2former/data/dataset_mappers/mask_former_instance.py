"""Training mapper for instance segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_instance")."""

from __future__ import annotations

import copy
import logging

import torch

from mask2former.config import configurable
from mask2former.data import detection_utils as utils
from mask2former.data import transforms as T
from mask2former.data.dataset_mappers.common import (
    build_semantic_style_augmentations,
    image_to_tensor,
    masks_to_tensor,
    pad_to_divisibility,
)
from mask2former.structures import Instances

logger = logging.getLogger(__name__)

__all__ = ["MaskFormerInstanceDatasetMapper"]


class MaskFormerInstanceDatasetMapper:
    """Reads an image and its COCO-style instance annotations (polygons or RLE), augments them.

    Output keys: ``image`` (C, H, W) uint8 and ``instances`` with ``gt_classes`` (N,) int64 and
    ``gt_masks`` (N, H, W) bool; crowd annotations are dropped.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: list,
        image_format: str,
        size_divisibility: int,
    ) -> None:
        """
        Args:
            is_train: must be True (training only).
            augmentations: augmentations / transforms applied in order.
            image_format: format passed to :func:`read_image` (INPUT.FORMAT).
            size_divisibility: pad to a multiple of this (INPUT.SIZE_DIVISIBILITY); <= 0: off.
        """
        if not is_train:
            raise ValueError(f"{type(self).__name__} is for training only (got is_train=False)")
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.size_divisibility = size_divisibility
        logger.info("[%s] Augmentations used in training: %s", type(self).__name__, augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "augmentations": build_semantic_style_augmentations(cfg, category_area_crop=False),
            "image_format": cfg.INPUT.FORMAT,
            "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        if "annotations" not in dataset_dict:
            raise ValueError(
                f"Record of image {dataset_dict['file_name']} has no 'annotations', which the "
                "instance mapper needs (use an empty list for an image without objects)."
            )
        aug_input = T.AugInput(image)
        _, transforms = T.apply_augmentations(self.augmentations, aug_input)
        image = aug_input.image
        height, width = image.shape[:2]

        annos = [
            utils.transform_instance_annotations(obj, transforms, (height, width))
            for obj in dataset_dict.pop("annotations")
            if obj.get("iscrowd", 0) == 0
        ]
        masks = []
        for obj in annos:
            if "segmentation" not in obj:
                raise ValueError(
                    f"An annotation of image {dataset_dict['file_name']} has no 'segmentation'"
                )
            masks.append(utils.segmentation_to_mask(obj["segmentation"], height, width))
        classes = torch.tensor([int(obj["category_id"]) for obj in annos], dtype=torch.int64)

        div = self.size_divisibility
        image_t = pad_to_divisibility(image_to_tensor(image), div, 128)
        masks_t = pad_to_divisibility(masks_to_tensor(masks, height, width), div, 0)
        dataset_dict["image"] = image_t
        instances = Instances(tuple(image_t.shape[-2:]))
        instances.gt_classes = classes
        instances.gt_masks = masks_t
        dataset_dict["instances"] = instances
        return dataset_dict
