"""Winograd F(2x2, 3x3) eval convolution (mask2former.layers.winograd) against F.conv2d."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from mask2former.layers import winograd, wrappers
from mask2former.layers.batch_norm import FrozenBatchNorm2d
from mask2former.layers.winograd import winograd_conv3x3, winograd_enabled, winograd_weight
from mask2former.layers.wrappers import Conv2d
from mask2former.modeling.build import build_model
from tests.tiny_config import tiny_cfg

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN"
)

# Measured against a float64 reference (unit-variance inputs, weights scaled by 1/sqrt(9 C_in)):
# Winograd's float32 max abs error is 1e-6 to 2.5e-6 (oneDNN's direct convolution: 3e-6 to
# 1.1e-5); under bfloat16 1.2x to 1.5x the direct bfloat16 convolution's (~0.02 to 0.03).
FLOAT32_ATOL = 1e-5
BFLOAT16_ERROR_FACTOR = 2.0


def _conv_inputs(batch, in_channels, out_channels, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, *size, generator=generator)
    weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator)
    weight /= math.sqrt(9 * in_channels)
    bias = torch.randn(out_channels, generator=generator)
    return x, weight, bias


def _reference(x, weight, bias, relu):
    out = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), padding=1)
    return out.relu() if relu else out


@pytest.fixture
def everywhere(monkeypatch):
    """Winograd for every 3x3 convolution, however few its channels and pixels."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", {torch.float32: 1, torch.bfloat16: 1})
    monkeypatch.setattr(winograd, "MIN_PIXELS", 1)


@pytest.fixture
def calls(monkeypatch):
    """The number of winograd_conv3x3 calls made through Conv2d."""
    counted = []

    def counting(*args, **kwargs):
        counted.append(1)
        return winograd_conv3x3(*args, **kwargs)

    monkeypatch.setattr(wrappers, "winograd_conv3x3", counting)
    return counted


@pytest.mark.parametrize("size", [(8, 12), (13, 17), (1, 5), (2, 2), (40, 9)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("with_bias,relu", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("band_tiles", [None, 6])
def test_float32_equals_conv2d(monkeypatch, size, channels_last, with_bias, relu, band_tiles):
    if band_tiles is not None:  # many bands of one or a few tile rows, the last one partial
        monkeypatch.setattr(winograd, "_BAND_TILES", band_tiles)
    x, weight, bias = _conv_inputs(2, 24, 40, size)
    bias = bias if with_bias else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = winograd_conv3x3(x, winograd_weight(weight, torch.float32), bias, relu=relu)
    assert got.shape == (2, 40, *size) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    expected = _reference(x, weight, bias, relu)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=FLOAT32_ATOL)


def test_float32_error_is_at_the_level_of_the_direct_convolution():
    # many bands (704 tiles each) and the model's channel count
    x, weight, _ = _conv_inputs(1, 256, 256, (70, 88))
    expected = _reference(x, weight, None, False)
    got = winograd_conv3x3(x, winograd_weight(weight, torch.float32))
    direct = F.conv2d(x, weight, padding=1)
    winograd_error = float((got.double() - expected).abs().max())
    direct_error = float((direct.double() - expected).abs().max())
    assert winograd_error <= 2 * direct_error


@pytest.mark.parametrize("size", [(8, 12), (13, 17)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_bfloat16_products_error_is_at_the_level_of_the_direct_bfloat16_convolution(
    size, channels_last, with_bias
):
    x, weight, bias = _conv_inputs(2, 64, 48, size)
    bias = bias if with_bias else None
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = _reference(x, weight, bias, False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        direct = F.conv2d(x, weight, bias, padding=1)
    got = winograd_conv3x3(
        x.bfloat16(), winograd_weight(weight, torch.bfloat16), bias, out_dtype=torch.bfloat16
    )
    assert got.dtype == direct.dtype == torch.bfloat16
    winograd_error = float((got.double() - expected).abs().max())
    direct_error = float((direct.double() - expected).abs().max())
    assert winograd_error <= BFLOAT16_ERROR_FACTOR * direct_error


def _conv_module(norm: str | None = None, relu: bool = False) -> Conv2d:
    torch.manual_seed(0)
    norm_module = {"BN": FrozenBatchNorm2d(32), "GN": torch.nn.GroupNorm(8, 32), None: None}[norm]
    conv = Conv2d(
        24,
        32,
        3,
        padding=1,
        bias=norm is None,
        norm=norm_module,
        activation=F.relu if relu else None,
    )
    if norm == "BN":
        norm_module.weight.uniform_(0.5, 1.5)
        norm_module.bias.normal_()
        norm_module.running_mean.normal_()
        norm_module.running_var.uniform_(0.5, 1.5)
    return conv.eval()


@pytest.mark.parametrize("norm,relu", [(None, False), ("BN", True), ("GN", True)])
def test_conv2d_module_uses_it_at_eval(everywhere, calls, norm, relu):
    conv = _conv_module(norm, relu)
    x = torch.randn(2, 24, 9, 14).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), winograd_enabled(False):
        expected = conv(x)
    assert calls == []
    with torch.no_grad():
        got = conv(x)
        fused = conv.forward_fused(x, relu=relu)
    assert len(calls) == 2
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


def test_conv2d_module_under_bfloat16_autocast(everywhere, calls):
    conv = _conv_module("BN", relu=True)
    x = torch.randn(2, 24, 9, 14)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        with winograd_enabled(False):
            expected = conv(x)
        got = conv(x)
    assert calls == [1] and got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=0.05, atol=0.05)


def test_transformed_weights_follow_weight_changes(everywhere):
    conv = _conv_module()
    x = torch.randn(1, 24, 6, 6)
    with torch.no_grad():
        conv(x)
        conv.load_state_dict({"weight": 2 * conv.weight, "bias": conv.bias})
        got = conv(x)
        with winograd_enabled(False):
            expected = conv(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_not_used_in_training_with_autograd_hooks_tracing_or_dispatch_modes(everywhere, calls):
    conv = _conv_module("BN", relu=True)
    x = torch.randn(1, 24, 6, 6)
    with torch.no_grad():
        conv.train()(x)  # training mode, autograd off
    conv.eval()(x)  # autograd on
    with torch.no_grad(), FlopCounterMode(display=False):
        conv(x)
    with torch.no_grad():
        # check_trace=False: the check reruns the module eagerly, where Winograd is right
        torch.jit.trace(conv, x, check_trace=False)
    torch.export.export(conv, (x,))
    handle = conv.register_forward_hook(lambda *args: None)
    with torch.no_grad():
        conv(x)
        conv.forward_fused(x, relu=True)
    handle.remove()
    assert calls == []


@pytest.mark.parametrize(
    "geometry",
    [dict(stride=2, padding=1), dict(padding=2, dilation=2), dict(padding=1, groups=2)],
)
def test_other_geometries_keep_the_direct_convolution(everywhere, calls, geometry):
    conv = Conv2d(24, 32, 3, **geometry).eval()
    with torch.no_grad():
        conv(torch.randn(1, 24, 8, 8))
    assert calls == []


def test_channel_and_size_thresholds(calls):
    conv = Conv2d(256, 256, 3, padding=1, bias=False).eval()
    with torch.no_grad():
        conv(torch.randn(1, 256, 16, 16))  # 256 pixels, float32: qualifies
        conv(torch.randn(1, 256, 15, 16))  # too small a map
        with torch.autocast("cpu", dtype=torch.bfloat16):
            conv(torch.randn(1, 256, 16, 16))  # bfloat16 needs 512 channels
    assert calls == [1]


def test_tiny_model_eval_output_with_and_without_winograd(everywhere, calls):
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    inputs = [{"image": torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)}]
    with torch.no_grad():
        with winograd_enabled(False):
            expected = model(inputs)[0]
        assert calls == []
        got = model(inputs)[0]
    # the first 3x3 convs of R18's 8 basic blocks but the 3 strided ones, and the pixel
    # decoder's FPN output conv (the second convs add the shortcut in a fused oneDNN kernel)
    assert len(calls) == 6
    torch.testing.assert_close(got["sem_seg"], expected["sem_seg"], rtol=1e-5, atol=1e-5)
