"""Training mapper for panoptic segmentation (INPUT.DATASET_MAPPER_NAME "mask_former_panoptic")."""

from __future__ import annotations

import copy

import numpy as np
import torch

from mask2former.data import detection_utils as utils
from mask2former.data import transforms as T
from mask2former.data.dataset_mappers.common import (
    image_to_tensor,
    masks_to_tensor,
    pad_to_divisibility,
)
from mask2former.data.dataset_mappers.mask_former_semantic import (
    IMAGE_PAD_VALUE,
    MaskFormerSemanticDatasetMapper,
)
from mask2former.structures import Instances

__all__ = ["MaskFormerPanopticDatasetMapper"]


class MaskFormerPanopticDatasetMapper(MaskFormerSemanticDatasetMapper):
    """Reads an image and its COCO-panoptic PNG, augments both, and builds per-segment targets.

    Same augmentations and arguments as :class:`MaskFormerSemanticDatasetMapper`. Output keys:
    ``image``, ``sem_seg`` (when the record has ``sem_seg_file_name``), ``instances`` with
    ``gt_classes`` (N,) int64 (contiguous category ids of non-crowd segments) and ``gt_masks``
    (N, H, W) bool.
    """

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image, sem_seg = self._read(dataset_dict)
        if "pan_seg_file_name" not in dataset_dict:
            raise ValueError(
                f"Record of image {dataset_dict['file_name']} has no 'pan_seg_file_name', which "
                "the panoptic mapper needs."
            )
        if "annotations" in dataset_dict:
            raise ValueError(
                f"Record of image {dataset_dict['file_name']} has 'annotations'; a panoptic "
                "record must carry 'segments_info' instead."
            )
        pan_seg = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        segments_info = dataset_dict["segments_info"]

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        _, transforms = T.apply_augmentations(self.augmentations, aug_input)
        pan_seg = utils.rgb2id(transforms.apply_segmentation(pan_seg))

        div = self.size_divisibility
        dataset_dict["image"] = pad_to_divisibility(
            image_to_tensor(aug_input.image), div, IMAGE_PAD_VALUE
        )
        if sem_seg is not None:
            sem_seg_t = torch.as_tensor(aug_input.sem_seg.astype("long"))
            dataset_dict["sem_seg"] = pad_to_divisibility(sem_seg_t, div, self.ignore_label).long()
        # 0 is the VOID panoptic id.
        pan_seg = pad_to_divisibility(torch.as_tensor(pan_seg.astype("long")), div, 0).numpy()

        height, width = pan_seg.shape
        classes, masks = [], []
        for segment in segments_info:
            if not segment.get("iscrowd", 0):
                classes.append(segment["category_id"])
                masks.append(pan_seg == segment["id"])
        instances = Instances((height, width))
        instances.gt_classes = torch.tensor(np.array(classes, dtype=np.int64), dtype=torch.int64)
        instances.gt_masks = masks_to_tensor(masks, height, width)
        dataset_dict["instances"] = instances
        return dataset_dict
