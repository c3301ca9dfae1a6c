import pytest
import torch

from mask2former.layers.point_sample import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
)


def test_point_sample_hits_pixel_centres():
    features = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    # Pixel (row 1, col 2) has its centre at x = 2.5 / 4, y = 1.5 / 3.
    coords = torch.tensor([[[2.5 / 4, 1.5 / 3], [0.5 / 4, 0.5 / 3]]])
    out = point_sample(features, coords, align_corners=False)
    assert out.shape == (1, 1, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([6.0, 0.0]))


def test_point_sample_grid_shape_and_interpolation():
    features = torch.tensor([[[[0.0, 2.0]]]])  # (1, 1, 1, 2)
    grid = torch.tensor([[[[0.5, 0.5]]]])  # halfway between the two pixel centres
    out = point_sample(features, grid, align_corners=False)
    assert out.shape == (1, 1, 1, 1)
    assert out.item() == pytest.approx(1.0)


def test_calculate_uncertainty_rejects_multi_class():
    with pytest.raises(ValueError, match=r"\(R, 1, \.\.\.\)"):
        calculate_uncertainty(torch.zeros(2, 3, 5))
    torch.testing.assert_close(
        calculate_uncertainty(torch.tensor([[[-2.0, 0.5]]])), torch.tensor([[[-2.0, -0.5]]])
    )


def test_uncertain_points_prefer_the_mask_boundary():
    torch.manual_seed(0)
    # Logits are 0 on the middle column (uncertain) and large elsewhere.
    logits = torch.full((2, 1, 16, 16), 10.0)
    logits[:, :, :, 8] = 0.0
    logits[:, :, :, :8] = -10.0
    coords = get_uncertain_point_coords_with_randomness(
        logits,
        calculate_uncertainty,
        num_points=40,
        oversample_ratio=3,
        importance_sample_ratio=1.0,
    )
    assert coords.shape == (2, 40, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    sampled = point_sample(logits, coords, align_corners=False)
    uniform = point_sample(logits, torch.rand(2, 40, 2), align_corners=False)
    assert sampled.abs().mean() < uniform.abs().mean()


def test_random_share_and_bad_ratios():
    logits = torch.randn(3, 1, 8, 8)
    coords = get_uncertain_point_coords_with_randomness(
        logits, calculate_uncertainty, 10, 2.0, 0.75
    )
    assert coords.shape == (3, 10, 2)
    with pytest.raises(ValueError, match="oversample_ratio"):
        get_uncertain_point_coords_with_randomness(logits, calculate_uncertainty, 10, 0.5, 0.75)
    with pytest.raises(ValueError, match="importance_sample_ratio"):
        get_uncertain_point_coords_with_randomness(logits, calculate_uncertainty, 10, 2.0, 1.5)
