"""Test-time augmentation for semantic segmentation (``TEST.AUG.*``), as in the original.

Every input is resized to each of ``TEST.AUG.MIN_SIZES`` (shortest edge, capped by
``TEST.AUG.MAX_SIZE``), optionally also flipped horizontally (``TEST.AUG.FLIP``); the model's
``sem_seg`` outputs, which it already resizes to the input's (height, width), are un-flipped
and averaged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from fvcore.transforms.transform import HFlipTransform, NoOpTransform, TransformList
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mask2former.data.transforms import (
    RandomFlip,
    ResizeShortestEdge,
    ResizeTransform,
    apply_augmentations,
)

logger = logging.getLogger(__name__)


class SemSegTTAMapper:
    """Turn one test input dict into its augmented copies, each with a "transforms" entry.

    Args:
        min_sizes: shortest-edge sizes to resize to.
        max_size: cap on the longest edge.
        flip: also add a horizontally flipped copy of each size.
    """

    def __init__(self, min_sizes: Sequence[int], max_size: int, flip: bool) -> None:
        if len(min_sizes) == 0:
            raise ValueError("TEST.AUG.MIN_SIZES must name at least one size")
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = int(max_size)
        self.flip = bool(flip)

    @classmethod
    def from_config(cls, cfg) -> SemSegTTAMapper:
        return cls(cfg.TEST.AUG.MIN_SIZES, cfg.TEST.AUG.MAX_SIZE, cfg.TEST.AUG.FLIP)

    def __call__(self, dataset_dict: dict) -> list[dict]:
        image = dataset_dict["image"].permute(1, 2, 0).numpy()
        orig_shape = (dataset_dict["height"], dataset_dict["width"])
        # The test mapper may already have resized the image; record that step so the list
        # of transforms always starts from the original image.
        if image.shape[:2] != orig_shape:
            pre_tfm = ResizeTransform(orig_shape[0], orig_shape[1], image.shape[0], image.shape[1])
        else:
            pre_tfm = NoOpTransform()
        candidates = []
        for min_size in self.min_sizes:
            resize = ResizeShortestEdge(min_size, self.max_size)
            candidates.append([resize])
            if self.flip:
                candidates.append([resize, RandomFlip(prob=1.0)])
        outputs = []
        for augs in candidates:
            new_image, tfms = apply_augmentations(augs, np.copy(image))
            out = copy.copy(dataset_dict)
            out["image"] = torch.from_numpy(np.ascontiguousarray(new_image.transpose(2, 0, 1)))
            out["transforms"] = TransformList([pre_tfm, *tfms.transforms])
            outputs.append(out)
        return outputs


class SemanticSegmentorWithTTA(nn.Module):
    """Wrap a model whose outputs carry "sem_seg"; same call signature as the model.

    Args:
        model: the segmentation model (DDP wrappers are unwrapped).
        tta_mapper: input dict -> list of augmented dicts (default from ``cfg``).
    """

    def __init__(self, cfg, model: nn.Module, tta_mapper: Callable | None = None) -> None:
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        self.model = model
        self.tta_mapper = tta_mapper if tta_mapper is not None else SemSegTTAMapper.from_config(cfg)

    def forward(self, batched_inputs: list[dict]) -> list[dict]:
        """Args: detectron2-style inputs with "image", "height", "width".

        Returns: per image {"sem_seg": (K, height, width)}.
        """
        return [self._inference_one(x) for x in batched_inputs]

    @torch.no_grad()
    def _inference_one(self, dataset_dict: dict) -> dict:
        if "height" not in dataset_dict or "width" not in dataset_dict:
            dataset_dict = dict(dataset_dict)
            dataset_dict["height"], dataset_dict["width"] = dataset_dict["image"].shape[-2:]
        total = None
        augmented = self.tta_mapper(dataset_dict)
        for aug_input in augmented:
            tfms = aug_input.pop("transforms")
            sem_seg = self.model([aug_input])[0]["sem_seg"]
            if any(isinstance(t, HFlipTransform) for t in tfms.transforms):
                sem_seg = sem_seg.flip(dims=[2])
            total = sem_seg if total is None else total + sem_seg
        return {"sem_seg": total / len(augmented)}
