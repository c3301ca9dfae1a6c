"""Per-instance binary masks (detectron2's ``BitMasks``) and mask -> box helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mask2former.structures.boxes import Boxes


def coco_segmentation_rle(segmentation: Any, height: int, width: int) -> Any:
    """A COCO annotation's ``segmentation`` (polygon list, uncompressed or compressed RLE) as
    one compressed RLE for pycocotools (``decode``, ``area``)."""
    from pycocotools import mask as mask_util

    if isinstance(segmentation, list):
        return mask_util.merge(mask_util.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):
        return mask_util.frPyObjects(segmentation, height, width)
    return segmentation


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes of binary masks; an empty mask gives a zero box.

    Args:
        masks: (N, H, W) bool or {0, 1}.

    Returns:
        (N, 4) float32 boxes in pixel-edge coordinates (x1 = last column + 1).
    """
    if masks.numel() == 0:
        return torch.zeros(masks.shape[0], 4, dtype=torch.float32, device=masks.device)
    # amax over uint8 is several times faster than any() over bool on CPU.
    masks = masks.bool().view(torch.uint8)
    x0, x1 = _first_and_end(masks.amax(dim=1).bool())  # columns holding a pixel: (N, W)
    y0, y1 = _first_and_end(masks.amax(dim=2).bool())  # rows holding a pixel: (N, H)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return boxes.where(x1.gt(0).unsqueeze(1), 0.0)


def _first_and_end(flags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) first index holding True and last such index + 1 of each row of (N, L) flags
    (L and 0 for a row without any)."""
    positions = torch.arange(1, flags.shape[1] + 1, device=flags.device)
    end = torch.where(flags, positions, 0).amax(dim=1)
    first = torch.where(flags, positions - 1, flags.shape[1]).amin(dim=1)
    return first, end


class BitMasks:
    """Binary masks stored as an (N, H, W) bool tensor in ``.tensor``."""

    def __init__(self, tensor: torch.Tensor | np.ndarray) -> None:
        if isinstance(tensor, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(tensor))
        tensor = tensor.to(dtype=torch.bool)
        if tensor.dim() != 3:
            raise ValueError(f"BitMasks expects an (N, H, W) tensor, got {tuple(tensor.shape)}")
        self.tensor = tensor
        self.image_size = tensor.shape[1:]

    def to(self, *args, **kwargs) -> BitMasks:
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item) -> BitMasks:
        if isinstance(item, int):
            return BitMasks(self.tensor[item].unsqueeze(0))
        return BitMasks(self.tensor[item])

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: masks with at least one pixel."""
        return self.tensor.flatten(1).any(dim=1)

    def get_bounding_boxes(self) -> Boxes:
        return Boxes(masks_to_boxes(self.tensor))

    @staticmethod
    def from_polygon_masks(
        polygons_per_instance: list[list[list[float] | np.ndarray]], height: int, width: int
    ) -> BitMasks:
        """Rasterise COCO polygons (one list of flat [x0, y0, x1, y1, ...] per instance)."""
        from pycocotools import mask as mask_util

        masks = []
        for polygons in polygons_per_instance:
            rles = mask_util.frPyObjects(
                [np.asarray(p, dtype=np.float64) for p in polygons], height, width
            )
            masks.append(mask_util.decode(mask_util.merge(rles)).astype(bool))
        if not masks:
            return BitMasks(torch.zeros(0, height, width, dtype=torch.bool))
        return BitMasks(torch.from_numpy(np.stack(masks)))

    @classmethod
    def cat(cls, masks_list: list[BitMasks]) -> BitMasks:
        return cls(torch.cat([m.tensor for m in masks_list], dim=0))

    def __repr__(self) -> str:
        return f"BitMasks(num_instances={len(self)}, image_size={tuple(self.image_size)})"
