"""Winograd F(2x2, 3x3) convolution for eval-time 3x3 convolutions on the CPU.

A 3x3 convolution with stride 1 and padding 1 is computed tile by tile: every 2x2 block of
outputs comes from a 4x4 block of (zero-padded) inputs, whose transform ``B^T d B`` (16 values
per channel) is multiplied, position by position, with the transformed weights ``G g G^T``; the
output transform ``A^T m A`` gives the 2x2 block. The 16 matrix products (tiles x C_in) @
(C_in x C_out) do 16 multiply-adds per 4 outputs where the direct convolution does 36: 2.25x
fewer, at the cost of the transforms, which are elementwise passes.

The work runs in bands of tile rows, so that the transformed inputs and products (each 4x the
band's input or output) stay in cache and no full-size temporary is allocated.

Numerics: in float32 the error against a float64 reference is at the level of the direct
convolution's (measured: max abs error 0.2x to 1x of oneDNN's direct convolution at 256
channels). Under bfloat16 the transforms and sums run in float32 and only the products in
bfloat16; the error is ~1.5x the direct bfloat16 convolution's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["winograd_applies", "winograd_conv3x3", "winograd_enabled", "winograd_weight"]

# F(2x2, 3x3) with interpolation points 0, 1, -1, inf. The output transform's columns for the
# points -1 and inf are negated (the weight transform's rows compensate), so that one output
# of each pair is a plain sum: y0 = m0 + m1 - m2, y1 = m1 + m2 + m3.
_WEIGHT_TRANSFORM = (  # G, (4, 3), rows 2 and 3 negated
    (1.0, 0.0, 0.0),
    (0.5, 0.5, 0.5),
    (-0.5, 0.5, -0.5),
    (0.0, 0.0, -1.0),
)

# Tiles per band (whole tile rows, at least one): at 256 channels the band's transformed inputs
# and products then take ~3 MB each in float32 (measured fastest among 352, 704 and 1408 tiles
# at 128x176 and 200x336).
_BAND_TILES = 704

# The smallest C_in and C_out for which Winograd is used, per product dtype: the products cost
# C_in * C_out per tile, the transforms C_in + C_out, so the gain grows with the channels.
# Measured against oneDNN's direct convolution (process CPU time, 2 threads, AVX-512 with
# bfloat16 dot products, no AMX): float32 1.15x-1.35x at 256 channels (8x11 to 200x336) and
# 1.3x-1.5x at 512; bfloat16 0.9x-1.13x at 256 channels, 1.2x-1.3x at 512 (16x22, 25x42),
# 1.0x at 512 on maps under 16x16; 64 and 128 channels lose in both (0.5x-0.9x).
MIN_CHANNELS = {torch.float32: 256, torch.bfloat16: 512}
# The smallest output map (pixels) for which Winograd is used.
MIN_PIXELS = 256

_enabled = True


@contextlib.contextmanager
def winograd_enabled(enabled: bool) -> Iterator[None]:
    """Within the block, eval-time convolutions use Winograd (where :func:`winograd_applies`)
    only when ``enabled`` (default: on); for A/B comparisons."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def winograd_applies(conv: nn.Conv2d, x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``conv`` on ``x`` (N, C_in, H, W), run in ``dtype``, is a 3x3 convolution with
    stride 1, padding 1 and no dilation or groups, with at least ``MIN_CHANNELS[dtype]`` input
    and output channels and an output of at least ``MIN_PIXELS`` pixels. The caller checks
    that the fused eval path applies (``mask2former.layers.inference_ops.kernel_dtype``)."""
    min_channels = MIN_CHANNELS.get(dtype)
    return (
        _enabled
        and min_channels is not None
        and tuple(conv.kernel_size) == (3, 3)
        and tuple(conv.stride) == (1, 1)
        and not isinstance(conv.padding, str)
        and tuple(conv.padding) == (1, 1)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= min_channels
        and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
    )


def winograd_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The transformed weights ``G g G^T`` of a 3x3 convolution, for :func:`winograd_conv3x3`.

    Args:
        weight: (C_out, C_in, 3, 3).
        dtype: the dtype of the products (float32, or bfloat16 under autocast).

    Returns:
        (16, C_in, C_out) contiguous, position-major (4x4 positions, row by row); computed in
        float64 and rounded once.
    """
    transform = torch.tensor(_WEIGHT_TRANSFORM, dtype=torch.float64, device=weight.device)
    exact = torch.einsum("ai,kcij,bj->abck", transform, weight.detach().double(), transform)
    return exact.reshape(16, weight.shape[1], weight.shape[0]).to(dtype).contiguous()


def winograd_conv3x3(
    x: torch.Tensor,
    transformed_weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    relu: bool = False,
    out_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``conv2d(x, weight, bias, stride=1, padding=1)`` (then ReLU when ``relu``) by Winograd.

    Args:
        x: (N, C_in, H, W), any memory format and float dtype; converted to float32 band by
            band.
        transformed_weight: (16, C_in, C_out) from :func:`winograd_weight`; its dtype is the
            dtype of the products.
        bias: (C_out,) or None.
        relu: apply ReLU last.
        out_dtype: the output dtype (default: ``transformed_weight``'s).

    Returns:
        (N, C_out, H, W), channels-last.
    """
    batch, channels, height, width = x.shape
    out_channels = transformed_weight.shape[-1]
    gemm_dtype = transformed_weight.dtype
    out_dtype = out_dtype or gemm_dtype
    tile_rows, tile_cols = -(-height // 2), -(-width // 2)
    band = min(max(1, _BAND_TILES // (batch * tile_cols)), tile_rows)
    # The input is read as (N, H, W, C): a free view of a channels-last map.
    pixels = x.permute(0, 2, 3, 1)
    out = x.new_empty((batch, 2 * tile_rows, 2 * tile_cols, out_channels), dtype=out_dtype)
    device = x.device
    f32 = dict(dtype=torch.float32, device=device)
    # padded band: 2 * band + 2 input rows, one zero column left and at least one right
    padded = torch.zeros((batch, 2 * band + 2, 2 * tile_cols + 2, channels), **f32)
    row_t = torch.empty((4, batch, band, 2 * tile_cols + 2, channels), **f32)
    inputs_t = torch.empty(
        (4, 4, batch, band, tile_cols, channels), dtype=gemm_dtype, device=device
    )
    products = torch.empty(
        (16, batch * band * tile_cols, out_channels), dtype=gemm_dtype, device=device
    )
    sums = torch.empty((2, 4, batch, band, tile_cols, out_channels), **f32)
    for first in range(0, tile_rows, band):
        rows = min(band, tile_rows - first)
        # input rows 2 * first - 1 .. 2 * (first + rows) land in padded rows 0 .. 2 * rows + 1
        lo, hi = 2 * first - 1, 2 * (first + rows) + 1
        src_lo, src_hi = max(lo, 0), min(hi, height)
        if src_lo > lo or src_hi < hi:  # the top or bottom band: zero rows outside the image
            padded.zero_()
        padded[:, src_lo - lo : src_hi - lo, 1 : width + 1] = pixels[:, src_lo:src_hi]
        band_t = inputs_t[:, :, :, :rows]
        _input_transform(padded[:, : 2 * rows + 2], row_t[:, :, :rows], band_t)
        count = batch * rows * tile_cols
        prods = products[:, :count]
        torch.bmm(band_t.reshape(16, count, channels), transformed_weight, out=prods)
        block = out[:, 2 * first : 2 * (first + rows)]
        products_6d = prods.view(4, 4, batch, rows, tile_cols, out_channels)
        _output_transform(products_6d, sums[:, :, :, :rows], block, bias)
        if relu:
            block.relu_()
    out = out[:, :height, :width].permute(0, 3, 1, 2)
    if height % 2 or width % 2:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _input_transform(padded: torch.Tensor, row_t: torch.Tensor, inputs_t: torch.Tensor) -> None:
    """``B^T d B`` of every 4x4 tile (stride 2) of ``padded`` (N, 2R + 2, W', C) into
    ``inputs_t`` (4, 4, N, R, W' // 2 - 1, C), through ``row_t`` (4, N, R, W', C)."""
    rows, cols = row_t.shape[2], inputs_t.shape[4]
    r = [padded[:, k : k + 2 * rows : 2] for k in range(4)]
    torch.sub(r[0], r[2], out=row_t[0])
    torch.add(r[1], r[2], out=row_t[1])
    torch.sub(r[2], r[1], out=row_t[2])
    torch.sub(r[1], r[3], out=row_t[3])
    c = [row_t[:, :, :, k : k + 2 * cols : 2] for k in range(4)]
    torch.sub(c[0], c[2], out=inputs_t[:, 0])
    torch.add(c[1], c[2], out=inputs_t[:, 1])
    torch.sub(c[2], c[1], out=inputs_t[:, 2])
    torch.sub(c[1], c[3], out=inputs_t[:, 3])


def _output_transform(
    products: torch.Tensor, sums: torch.Tensor, block: torch.Tensor, bias: torch.Tensor | None
) -> None:
    """``A^T m A`` (+ ``bias``) of ``products`` (4, 4, N, R, T, K) into ``block`` (N, 2R, 2T,
    K), through ``sums`` (2, 4, N, R, T, K); float32 sums, one rounding to ``block``'s dtype."""
    # rows: sums[0] = m0 + m1 - m2, sums[1] = m1 + m2 + m3 (the signs of _WEIGHT_TRANSFORM)
    if products.dtype == torch.float32:
        torch.add(products[0], products[1], out=sums[0])
        torch.add(products[1], products[2], out=sums[1])
    else:
        # a float32 ``self`` makes the in-place adds compute in float32 (an out= add of two
        # bfloat16 tensors would round its result to bfloat16 first)
        sums[0].copy_(products[0]).add_(products[1])
        sums[1].copy_(products[1]).add_(products[2])
    sums[0].sub_(products[2])
    sums[1].add_(products[3])
    if bias is not None:
        # column 1 enters both outputs of a pair with coefficient 1
        sums[:, 1].add_(bias)
    # columns, the same combination; each output is written once
    batch, rows, cols, channels = sums.shape[2:]
    out = block.view(batch, rows, 2, cols, 2, channels).permute(4, 2, 0, 1, 3, 5)
    s = sums.unbind(1)
    difference = torch.sub(s[1], s[2])
    torch.add(s[0], difference, out=out[0])
    torch.add(s[1], s[2], out=difference)
    torch.add(difference, s[3], out=out[1])
