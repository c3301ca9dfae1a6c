"""Multi-scale deformable attention module (Deformable DETR), built on the one public op."""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.nn import functional as F

from mask2former.layers.inference_ops import fused_linear, kernel_dtype
from mask2former.layers.ms_deform_attn import ms_deform_attn

logger = logging.getLogger(__name__)


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    # Softmax over a short last dimension (n_levels * n_points, e.g. 12): the CPU softmax
    # kernel is ~5x slower there than these vectorised passes (equal within 1e-6). float32,
    # as the deformable-attention op computes in float32 anyway. In place: inference only.
    x = x.float()
    exp = (x - x.amax(-1, keepdim=True)).exp_()
    return exp.div_(exp.sum(-1, keepdim=True))


def _sampling_locations_flat(
    reference_points: torch.Tensor, offsets: torch.Tensor, offset_normalizer: torch.Tensor
) -> torch.Tensor:
    """``reference + offsets / normalizer`` with the (level, point, xy) axes flattened into
    one contiguous last axis: the broadcast over a last axis of 2 is several times slower on
    the CPU. The same float operations: a division, then an addition.

    Args:
        reference_points: (N, Lq, L, 2).
        offsets: (N, Lq, heads, L, P, 2).
        offset_normalizer: (L, 2) (W_l, H_l).

    Returns:
        (N, Lq, heads, L, P, 2).
    """
    batch, num_queries, heads, _, points, _ = offsets.shape
    reference = reference_points[:, :, None, :, None, :].expand(-1, -1, 1, -1, points, -1)
    normalizer = offset_normalizer[:, None, :].expand(-1, points, -1).to(reference.dtype)
    locations = torch.addcdiv(
        reference.reshape(batch, num_queries, 1, -1),
        offsets.reshape(batch, num_queries, heads, -1),
        normalizer.reshape(-1),
    )
    return locations.view(offsets.shape)


class MSDeformAttn(nn.Module):
    """Each query attends to ``n_points`` learned offsets around its reference point per level.

    Parameter names (``sampling_offsets``, ``attention_weights``, ``value_proj``,
    ``output_proj``) match the original checkpoints.

    Args:
        d_model: hidden dimension.
        n_levels: number of feature levels.
        n_heads: number of attention heads (must divide ``d_model``).
        n_points: sampling points per head and level.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        head_dim = d_model // n_heads
        if head_dim & (head_dim - 1) != 0:
            logger.warning(
                "MSDeformAttn head dimension %d (d_model=%d / n_heads=%d) is not a power of 2; "
                "the CUDA kernel is slower for such sizes.",
                head_dim,
                d_model,
                n_heads,
            )
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points

        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Zero offsets/weights, offset bias on a ring of directions, xavier projections."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        # one direction per head, scaled so the larger coordinate is 1, the k-th point k+1 away
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        directions = torch.stack([thetas.cos(), thetas.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True)[0]
        grid = directions.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        input_spatial_shapes: torch.Tensor,
        input_level_start_index: torch.Tensor,
        input_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``query`` to the flattened multi-level ``input_flatten``.

        Args:
            query: (N, Lq, C).
            reference_points: (N, Lq, n_levels, 2), normalised (x, y) in [0, 1].
            input_flatten: (N, S, C), S = sum over levels of H_l * W_l.
            input_spatial_shapes: (n_levels, 2) int64, (H_l, W_l).
            input_level_start_index: (n_levels,) int64, offset of each level in S.
            input_padding_mask: optional (N, S) bool, True on padding.

        Returns:
            (N, Lq, C).
        """
        batch, num_queries, _ = query.shape
        _, num_values, _ = input_flatten.shape
        if reference_points.shape[-1] != 2:
            raise ValueError(
                "reference_points must end in (x, y), shape (N, Lq, n_levels, 2); "
                f"got {tuple(reference_points.shape)}"
            )

        value = fused_linear(self.value_proj, input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(batch, num_values, self.n_heads, self.d_model // self.n_heads)

        # Under CPU autocast both projections of the query would cast it: cast it once.
        query_dtype = kernel_dtype(query)
        if query_dtype is not None:
            query = query.to(query_dtype)
        offsets = fused_linear(self.sampling_offsets, query).view(
            batch, num_queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        # softmax jointly over all levels and points of a head
        weights = fused_linear(self.attention_weights, query).view(
            batch, num_queries, self.n_heads, self.n_levels * self.n_points
        )
        # Traced graphs (the TorchScript ONNX exporter, which has no addcdiv) take the plain ops.
        eval_on_cpu = not (
            self.training
            or torch.is_grad_enabled()
            or query.device.type != "cpu"
            or torch.jit.is_tracing()
        )
        weights = _softmax_last(weights) if eval_on_cpu else F.softmax(weights, -1)
        weights = weights.view(batch, num_queries, self.n_heads, self.n_levels, self.n_points)
        # offsets are in pixels of each level: normalise by that level's (W, H)
        offset_normalizer = torch.stack(
            [input_spatial_shapes[..., 1], input_spatial_shapes[..., 0]], -1
        )
        if eval_on_cpu:
            sampling_locations = _sampling_locations_flat(
                reference_points, offsets, offset_normalizer
            )
        else:
            sampling_locations = (
                reference_points[:, :, None, :, None, :]
                + offsets / offset_normalizer[None, None, None, :, None, :]
            )
        output = ms_deform_attn(
            value, input_spatial_shapes, input_level_start_index, sampling_locations, weights
        )
        return fused_linear(self.output_proj, output)
