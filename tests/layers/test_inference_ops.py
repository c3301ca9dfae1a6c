"""Fused CPU inference kernels (mask2former.layers.inference_ops) against the plain ops."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mask2former.layers.batch_norm import FrozenBatchNorm2d
from mask2former.layers.inference_ops import fused_linear, fused_path_ok, upsample_bilinear_2x
from mask2former.layers.wrappers import Conv2d

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN"
)


def _linear(in_features: int = 24, out_features: int = 40) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(in_features, out_features)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_residual", [False, True])
def test_fused_linear_equals_the_module(relu, with_residual):
    layer = _linear()
    x = torch.randn(2, 33, 24)
    residual = torch.randn(2, 33, 40) if with_residual else None
    expected = layer(x) + (0 if residual is None else residual)
    expected = F.relu(expected) if relu else expected
    with torch.no_grad():
        assert fused_path_ok(x)
        got = fused_linear(layer, x, relu=relu, residual=residual)
    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-5)


def test_fused_linear_keeps_autograd_and_hooks_off_the_fast_path():
    layer = _linear()
    calls = []
    layer.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(5, 24, requires_grad=True)
    fused_linear(layer, x, relu=True).sum().backward()
    assert calls == [1] and x.grad is not None


def test_fused_linear_under_bfloat16_autocast():
    layer = _linear()
    x, residual = torch.randn(7, 24), torch.randn(7, 40)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = layer(x) + residual
        got = fused_linear(layer, x, residual=residual)
        hidden = fused_linear(layer, x, relu=True)
    # a float32 residual is added in float32, as autocast's add promotes
    assert got.dtype == expected.dtype == torch.float32
    assert hidden.dtype == torch.bfloat16
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("kernel_size,stride", [(1, 1), (3, 1), (3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_forward_fused_equals_conv_norm_add_relu(kernel_size, stride, channels_last):
    torch.manual_seed(0)
    norm = FrozenBatchNorm2d(16)
    norm.weight.uniform_(0.5, 1.5)
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    conv = Conv2d(
        8, 16, kernel_size, stride=stride, padding=kernel_size // 2, bias=False, norm=norm
    )
    x = torch.randn(2, 8, 13, 10)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected_size = conv.train()(x).shape
    residual = torch.randn(expected_size)
    with torch.no_grad():
        expected = F.relu(norm(F.conv2d(x, conv.weight, None, stride, kernel_size // 2)) + residual)
        conv.eval()
        got = conv.forward_fused(x, relu=True, residual=residual)
        again = conv.forward_fused(x, relu=True, residual=residual)  # cached kernel weights
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, again)
    with torch.no_grad():
        norm.running_mean.add_(1.0)  # a changed buffer invalidates the cached weights
        moved = conv.forward_fused(x, relu=True, residual=residual)
    assert not torch.equal(moved, got)


@pytest.mark.parametrize("size", [(6, 9), (2, 2), (1, 5), (7, 1)])
@pytest.mark.parametrize("batch", [1, 2])
def test_upsample_2x_equals_bilinear_interpolate(size, batch):
    x = torch.randn(batch, 5, *size).contiguous(memory_format=torch.channels_last)
    target = (2 * size[0], 2 * size[1])
    expected = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    with torch.no_grad():
        got = upsample_bilinear_2x(x, target)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_upsample_other_sizes_fall_back_to_interpolate():
    x = torch.randn(1, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = upsample_bilinear_2x(x, (9, 13))
    assert torch.equal(got, F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=False))
