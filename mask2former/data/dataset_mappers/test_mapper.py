"""Inference mapper (detectron2's DatasetMapper at test time)."""

from __future__ import annotations

import copy
import logging

from mask2former.config import configurable
from mask2former.data import detection_utils as utils
from mask2former.data import transforms as T
from mask2former.data.dataset_mappers.common import image_to_tensor

logger = logging.getLogger(__name__)

__all__ = ["DatasetMapper"]


class DatasetMapper:
    """Reads and resizes an image for inference.

    Output: the record plus ``image`` (C, H, W) uint8 in ``image_format``; ``height`` / ``width``
    keep the original size (outputs are resized back to it), ``file_name`` / ``image_id`` are
    kept; ground-truth fields are dropped.
    """

    @configurable
    def __init__(self, is_train: bool = False, *, augmentations: list, image_format: str) -> None:
        """
        Args:
            is_train: must be False (the training mappers live next to this one).
            augmentations: e.g. ``[ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST, "choice")]``.
            image_format: format passed to :func:`read_image` (INPUT.FORMAT).
        """
        if is_train:
            raise ValueError("DatasetMapper here is the test-time mapper; got is_train=True")
        self.augmentations = augmentations
        self.image_format = image_format
        logger.info("[DatasetMapper] Augmentations used in inference: %s", augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = False) -> dict:
        min_size, max_size = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        # 0 disables resizing (as in detectron2); ResizeShortestEdge refuses negative sizes.
        augs = [T.ResizeShortestEdge(min_size, max_size, "choice")] if min_size != 0 else []
        return {"is_train": is_train, "augmentations": augs, "image_format": cfg.INPUT.FORMAT}

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        image, _ = T.apply_augmentations(self.augmentations, image)
        dataset_dict["image"] = image_to_tensor(image)
        for key in ("annotations", "sem_seg_file_name", "pan_seg_file_name"):
            dataset_dict.pop(key, None)
        return dataset_dict
