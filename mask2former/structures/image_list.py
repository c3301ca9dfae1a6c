"""A batch of differently sized images padded into one tensor (detectron2's ``ImageList``)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


class ImageList:
    """Padded batch ``tensor`` (N, C, H_max, W_max) plus each image's (h, w) in ``image_sizes``."""

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """The unpadded image ``idx``: (C, h, w)."""
        height, width = self.image_sizes[idx]
        return self.tensor[idx, ..., :height, :width]

    def to(self, *args, **kwargs) -> ImageList:
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: list[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
    ) -> ImageList:
        """Pad (..., H_i, W_i) tensors at the bottom/right to a common, divisible size.

        Args:
            tensors: list of (C, H_i, W_i) (or (H_i, W_i)) tensors with equal leading dims.
            size_divisibility: round the padded H and W up to a multiple of this (0/1: no-op).
            pad_value: value of the padded pixels.
        """
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one tensor")
        for t in tensors:
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"all images need the same leading dims; got {tuple(t.shape)} "
                    f"and {tuple(tensors[0].shape)}"
                )
        image_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(h for h, _ in image_sizes)
        max_w = max(w for _, w in image_sizes)
        if size_divisibility > 1:
            max_h = int(math.ceil(max_h / size_divisibility) * size_divisibility)
            max_w = int(math.ceil(max_w / size_divisibility) * size_divisibility)
        if len(tensors) == 1:
            height, width = image_sizes[0]
            padding = [0, max_w - width, 0, max_h - height]
            batched = F.pad(tensors[0], padding, value=pad_value).unsqueeze(0)
        else:
            batch_shape = [len(tensors), *tensors[0].shape[:-2], max_h, max_w]
            batched = tensors[0].new_full(batch_shape, pad_value)
            for img, pad_img in zip(tensors, batched):
                pad_img[..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
