"""The one public multi-scale deformable attention op.

``ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations,
attention_weights)`` -> (N, Lq, heads * dim). Backends (compiled CPU / CUDA kernels) plug in
here; the PyTorch reference is always available.
"""

from __future__ import annotations

import torch

from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention.

    Args:
        value: (N, S, heads, dim).
        spatial_shapes: (L, 2) int64 (H_l, W_l).
        level_start_index: (L,) int64.
        sampling_locations: (N, Lq, heads, L, P, 2) in [0, 1] (x, y).
        attention_weights: (N, Lq, heads, L, P).

    Returns:
        (N, Lq, heads * dim).
    """
    return ms_deform_attn_reference(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )
