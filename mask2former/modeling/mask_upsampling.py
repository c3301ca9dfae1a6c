"""Mask logits from the network's 1/4 resolution to the output resolution, without padding.

MaskFormer's inference upsamples the (Q, H_pad / 4, W_pad / 4) mask logits to the padded input
size, crops the image out of the padding and resizes the crop to the requested output size
(bilinear, ``align_corners=False`` both times). ``upsample_masks`` gives exactly that result
(bit for bit) but only computes the pixels inside the image: bilinear interpolation of a
crop equals the crop of the interpolation when the crop keeps every source row and column
the kept output pixels read, and the interpolation uses the original scale factor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Crop the padding off a prediction and resize it to the requested output size.

    Args:
        result: (C, H_pad, W_pad) per-pixel predictions on the padded input.
        img_size: (h, w) of the input image inside the padded tensor.
        output_height: height of the returned prediction.
        output_width: width of the returned prediction.

    Returns:
        (C, output_height, output_width), bilinear with ``align_corners=False``.
    """
    cropped = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(
        cropped, size=(output_height, output_width), mode="bilinear", align_corners=False
    )[0]


def resize_to_output(
    prediction: torch.Tensor, output_height: int, output_width: int
) -> torch.Tensor:
    """(C, h, w) -> (C, output_height, output_width) bilinear; unchanged when the size is the
    same (the interpolation would return the same values)."""
    if tuple(prediction.shape[-2:]) == (output_height, output_width):
        return prediction
    return sem_seg_postprocess(prediction, prediction.shape[-2:], output_height, output_width)


def _source_extent(source_size: int, padded_size: int, kept_size: int) -> int | None:
    """Source rows (or columns) that output rows ``0 .. kept_size - 1`` of an upsampling from
    ``source_size`` to ``padded_size`` read, or None when cropping the source would change
    the result.

    PyTorch computes the source coordinate of output index i as
    ``max(scale * (i + 0.5) - 0.5, 0)`` in float32 with ``scale = source_size / padded_size``,
    and reads rows ``floor`` and ``floor + 1`` (clamped to the last row). A crop keeps the
    result when it holds both rows of every kept output, the scale passed explicitly rounds
    to the same float32 and the cropped size differs from the output size (PyTorch copies
    instead of interpolating when they are equal).
    """
    if padded_size == source_size:
        return None
    scale = np.float32(source_size) / np.float32(padded_size)
    if np.float32(1.0 / (padded_size / source_size)) != scale:
        return None
    last = max(scale * (np.float32(kept_size - 1) + np.float32(0.5)) - np.float32(0.5), 0.0)
    # One row of margin against fused multiply-add rounding in the kernel.
    extent = min(source_size, int(last) + 3)
    return None if extent == kept_size else extent


def upsample_masks(
    mask_logits: torch.Tensor,
    padded_size: tuple[int, int],
    image_size: tuple[int, int],
    output_size: tuple[int, int],
) -> torch.Tensor:
    """Mask logits at the output resolution, equal to upsampling to the padded size, cropping
    to the image and resizing to ``output_size``.

    Args:
        mask_logits: (Q, H_pad / 4, W_pad / 4) mask logits of one image (any float dtype).
        padded_size: (H_pad, W_pad) of the padded network input.
        image_size: (h, w) of the image inside the padded input.
        output_size: (H_out, W_out) of the result.

    Returns:
        (Q, H_out, W_out) float32 mask logits.
    """
    mask_logits = mask_logits.float()
    height, width = image_size
    rows = _source_extent(mask_logits.shape[-2], padded_size[0], height)
    cols = _source_extent(mask_logits.shape[-1], padded_size[1], width)
    if rows is None or cols is None:
        padded = F.interpolate(
            mask_logits[None], size=padded_size, mode="bilinear", align_corners=False
        )[0]
        masks = padded[:, :height, :width]
        if tuple(output_size) == (height, width):
            return masks.contiguous()
    else:
        source = mask_logits[None, :, :rows, :cols].contiguous()
        scales = (padded_size[0] / mask_logits.shape[-2], padded_size[1] / mask_logits.shape[-1])
        masks = torch.ops.aten.upsample_bilinear2d(source, [height, width], False, *scales)[0]
    return resize_to_output(masks, *output_size)
