"""Stochastic depth ("drop path") for residual branches."""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``drop_prob``.

    Kept samples are scaled by ``1 / (1 - drop_prob)`` so the expectation is unchanged.

    Args:
        x: (N, ...) output of a residual branch.
        drop_prob: probability of dropping a sample, in [0, 1].
        training: identity unless True.

    Returns:
        Tensor of the same shape as ``x``.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    # One Bernoulli draw per sample, broadcast over every other dimension.
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = x.new_empty(mask_shape).bernoulli_(keep_prob)
    if keep_prob > 0.0:
        keep.div_(keep_prob)
    return x * keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (identity in eval mode)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, ...). Returns: same shape."""
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"
