"""Sine positional encoding for 2D feature maps (DETR style)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Fixed sine/cosine embedding of (y, x) pixel positions.

    The first ``num_pos_feats`` output channels encode y, the next ``num_pos_feats`` encode x;
    within each half, even channels hold ``sin`` and odd channels ``cos`` of the position
    divided by ``temperature ** (2 * (i // 2) / num_pos_feats)``.

    Args:
        num_pos_feats: channels per axis (the output has ``2 * num_pos_feats`` channels).
        temperature: base of the frequency progression.
        normalize: scale positions to ``(0, scale]`` by the extent of the unmasked area.
        scale: range used with ``normalize``; defaults to ``2 * pi``.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: int = 10000,
        normalize: bool = False,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError(f"scale={scale} needs normalize=True, got normalize={normalize}")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Embed the positions of ``x``'s pixels (only its shape and device are used).

        Args:
            x: (B, C, H, W).
            mask: optional (B, H, W) bool, True on padding (excluded from the positions).

        Returns:
            (B, 2 * num_pos_feats, H, W) float32.
        """
        batch, _, height, width = x.shape
        if mask is None:
            # Without padding, y depends on the row only and x on the column only: embed one
            # column (B, H, 1) and one row (B, 1, W) and broadcast (the same values).
            ones = partial(torch.ones, device=x.device, dtype=torch.float32)
            y_pos = ones((batch, height, 1)).cumsum(1)
            x_pos = ones((batch, 1, width)).cumsum(2)
        else:
            not_mask = ~mask
            y_pos = not_mask.cumsum(1, dtype=torch.float32)
            x_pos = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_pos = y_pos / (y_pos[:, -1:, :] + eps) * self.scale
            x_pos = x_pos / (x_pos[:, :, -1:] + eps) * self.scale

        channel = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        frequencies = self.temperature ** (2 * (channel // 2) / self.num_pos_feats)

        def interleave_sin_cos(positions: torch.Tensor) -> torch.Tensor:
            # (B, H, W) -> (B, H, W, num_pos_feats): sin on even channels, cos on odd ones
            angles = positions[:, :, :, None] / frequencies
            return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=4).flatten(3)

        embeddings = torch.broadcast_tensors(interleave_sin_cos(y_pos), interleave_sin_cos(x_pos))
        return torch.cat(embeddings, dim=3).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale}"
        )
