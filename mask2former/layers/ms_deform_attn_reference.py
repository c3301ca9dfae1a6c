"""Pure-PyTorch multi-scale deformable attention (the reference every kernel is tested against)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Bilinear sampling with zero padding, as ``grid_sample(align_corners=False)``.

    Args:
        value: (N, S, heads, dim), S = sum of H_l * W_l over levels.
        spatial_shapes: (L, 2) int64, (H_l, W_l) per level.
        level_start_index: (L,) int64, offset of each level in S (unused: derived from shapes).
        sampling_locations: (N, Lq, heads, L, P, 2), normalised (x, y) in [0, 1].
        attention_weights: (N, Lq, heads, L, P).

    Returns:
        (N, Lq, heads * dim).

    The level sizes stay 0-d tensors (no ``tolist``): the ONNX exporters then record them as
    graph values, so one exported graph runs at any input size.
    """
    del level_start_index  # the level offsets are summed from spatial_shapes
    batch, _, heads, dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    # grid_sample wants coordinates in [-1, 1]
    grids = 2 * sampling_locations - 1
    sampled = []
    start = 0
    for level in range(num_levels):
        height, width = spatial_shapes[level, 0], spatial_shapes[level, 1]
        end = start + height * width
        # (N, H*W, heads, dim) -> (N*heads, dim, H, W)
        level_value = (
            value[:, start:end]
            .flatten(2)
            .transpose(1, 2)
            .reshape(batch * heads, dim, height, width)
        )
        # (N, Lq, heads, P, 2) -> (N*heads, Lq, P, 2)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(
            F.grid_sample(
                level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )  # (N*heads, dim, Lq, P)
        start = end
    # (N, Lq, heads, L, P) -> (N*heads, 1, Lq, L*P)
    weights = attention_weights.transpose(1, 2).reshape(
        batch * heads, 1, num_queries, num_levels * num_points
    )
    output = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return output.view(batch, heads * dim, num_queries).transpose(1, 2).contiguous()
