"""Training mapper for semantic segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_semantic")."""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from mask2former.config import configurable
from mask2former.data import detection_utils as utils
from mask2former.data import transforms as T
from mask2former.data.dataset_mappers.common import (
    build_semantic_style_augmentations,
    image_to_tensor,
    masks_to_tensor,
    pad_to_divisibility,
    train_ignore_label,
)
from mask2former.structures import Instances

logger = logging.getLogger(__name__)

__all__ = ["MaskFormerSemanticDatasetMapper"]

# Padding value of images, as in the original mappers.
IMAGE_PAD_VALUE = 128


class MaskFormerSemanticDatasetMapper:
    """Reads an image and its semantic label map, augments both, and builds per-class targets.

    Output keys: ``image`` (C, H, W) uint8, ``sem_seg`` (H, W) int64 with ``ignore_label``,
    ``instances`` with ``gt_classes`` (K,) int64 (classes present) and ``gt_masks`` (K, H, W)
    bool.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: list,
        image_format: str,
        ignore_label: int,
        size_divisibility: int,
    ) -> None:
        """
        Args:
            is_train: must be True (training only).
            augmentations: augmentations / transforms applied in order.
            image_format: format passed to :func:`read_image` (INPUT.FORMAT).
            ignore_label: label ignored in training; used for padding the label map.
            size_divisibility: pad to a multiple of this (INPUT.SIZE_DIVISIBILITY); <= 0: off.
        """
        if not is_train:
            raise ValueError(f"{type(self).__name__} is for training only (got is_train=False)")
        self.is_train = is_train
        self.augmentations = augmentations
        self.image_format = image_format
        self.ignore_label = ignore_label
        self.size_divisibility = size_divisibility
        logger.info("[%s] Augmentations used in training: %s", type(self).__name__, augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "augmentations": build_semantic_style_augmentations(cfg, category_area_crop=True),
            "image_format": cfg.INPUT.FORMAT,
            "ignore_label": train_ignore_label(cfg),
            "size_divisibility": cfg.INPUT.SIZE_DIVISIBILITY,
        }

    def _read(self, dataset_dict: dict) -> tuple[np.ndarray, np.ndarray | None]:
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        sem_seg = None
        if "sem_seg_file_name" in dataset_dict:
            sem_seg = utils.read_image(dataset_dict.pop("sem_seg_file_name")).astype("double")
        return image, sem_seg

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image, sem_seg = self._read(dataset_dict)
        if sem_seg is None:
            raise ValueError(
                f"Record of image {dataset_dict['file_name']} has no 'sem_seg_file_name', which "
                "the semantic mapper needs."
            )
        if "annotations" in dataset_dict:
            raise ValueError(
                f"Record of image {dataset_dict['file_name']} has 'annotations'; a semantic "
                "segmentation record must not."
            )
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        T.apply_augmentations(self.augmentations, aug_input)

        image_t = pad_to_divisibility(
            image_to_tensor(aug_input.image), self.size_divisibility, IMAGE_PAD_VALUE
        )
        sem_seg_t = pad_to_divisibility(
            torch.as_tensor(aug_input.sem_seg.astype("long")),
            self.size_divisibility,
            self.ignore_label,
        )
        dataset_dict["image"] = image_t
        dataset_dict["sem_seg"] = sem_seg_t.long()

        sem_seg_np = sem_seg_t.numpy()
        classes = np.unique(sem_seg_np)
        classes = classes[classes != self.ignore_label]
        height, width = sem_seg_np.shape
        instances = Instances((height, width))
        instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
        instances.gt_masks = masks_to_tensor([sem_seg_np == c for c in classes], height, width)
        dataset_dict["instances"] = instances
        return dataset_dict
