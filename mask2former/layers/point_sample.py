"""Point sampling on mask logits (the PointRend utilities that Mask2Former's losses use).

Points live in the normalised square [0, 1] x [0, 1] as (x, y); sampling is bilinear with
``grid_sample(..., align_corners=False)`` and zero padding, as in detectron2's PointRend.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F


def point_sample(
    features: torch.Tensor, point_coords: torch.Tensor, **grid_sample_kwargs
) -> torch.Tensor:
    """Bilinearly sample ``features`` at normalised point coordinates.

    Args:
        features: (N, C, H, W) feature maps.
        point_coords: (N, P, 2) or (N, Hg, Wg, 2) points (x, y) in [0, 1] x [0, 1].
        **grid_sample_kwargs: passed to ``F.grid_sample`` (callers pass ``align_corners``).

    Returns:
        (N, C, P) for 3-dim ``point_coords``, else (N, C, Hg, Wg).
    """
    flat_points = point_coords.dim() == 3
    if flat_points:
        point_coords = point_coords.unsqueeze(2)
    # grid_sample wants coordinates in [-1, 1].
    sampled = F.grid_sample(features, 2.0 * point_coords - 1.0, **grid_sample_kwargs)
    if flat_points:
        sampled = sampled.squeeze(3)
    return sampled


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits: minus their distance from 0.

    Args:
        logits: (R, 1, ...) mask logits.

    Returns:
        (R, 1, ...) scores; the most uncertain locations score highest.
    """
    if logits.shape[1] != 1:
        raise ValueError(
            f"calculate_uncertainty expects class-agnostic logits of shape (R, 1, ...), "
            f"got {tuple(logits.shape)}"
        )
    return -torch.abs(logits)


def get_uncertain_point_coords_with_randomness(
    coarse_logits: torch.Tensor,
    uncertainty_func: Callable[[torch.Tensor], torch.Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> torch.Tensor:
    """Sample points biased towards uncertain locations (PointRend's training sampler).

    ``num_points * oversample_ratio`` random points are drawn, the
    ``importance_sample_ratio * num_points`` most uncertain of them are kept, and the rest of
    the ``num_points`` are drawn uniformly at random. Uncertainty is computed on the sampled
    (interpolated) logits, not on the coarse grid.

    Args:
        coarse_logits: (N, C, H, W) logits (C = 1 for class-agnostic masks).
        uncertainty_func: maps (N, C, P) point logits to (N, 1, P) uncertainties.
        num_points: number of points P to return.
        oversample_ratio: >= 1.
        importance_sample_ratio: in [0, 1].

    Returns:
        (N, P, 2) point coordinates in [0, 1] x [0, 1].
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
        )
    num_boxes = coarse_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    device = coarse_logits.device
    candidate_coords = torch.rand(num_boxes, num_sampled, 2, device=device)
    candidate_logits = point_sample(coarse_logits, candidate_coords, align_corners=False)
    uncertainties = uncertainty_func(candidate_logits)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    top_idx = torch.topk(uncertainties[:, 0, :], k=num_uncertain, dim=1)[1]
    # Gather the chosen candidates of every box from the flattened (N * num_sampled, 2) list.
    top_idx = (
        top_idx + num_sampled * torch.arange(num_boxes, dtype=torch.long, device=device)[:, None]
    )
    point_coords = candidate_coords.view(-1, 2)[top_idx.view(-1), :].view(
        num_boxes, num_uncertain, 2
    )
    if num_random > 0:
        random_coords = torch.rand(num_boxes, num_random, 2, device=device)
        point_coords = torch.cat([point_coords, random_coords], dim=1)
    return point_coords
