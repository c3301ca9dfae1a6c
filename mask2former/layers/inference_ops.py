"""Eval-only CPU kernels: oneDNN linear layers and convolutions with the bias, ReLU and residual
add fused into one pass, and a channels-last 2x bilinear upsampling.

Each function falls back to the plain module or ``torch.nn.functional`` call (the training
path, unchanged) unless :func:`fused_path_ok` holds: a CPU tensor in float32 or bfloat16,
autograd off (``torch.no_grad()`` / ``torch.inference_mode()``), no tracing (torch.compile,
torch.export and TorchScript see the plain ops), no active ``TorchDispatchMode`` (FLOP and
activation counters see the plain ops), no forward hooks on the module (they fire as usual) and
oneDNN built into torch. The fused kernels
compute the same sums in another order: results agree with the plain path within float32
rounding (tests/modeling/test_inference_fast_paths.py).

Under CPU autocast (``TEST.AMP``), the inputs and weights are cast to the autocast dtype, as
autocast does for ``linear`` and ``conv2d``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as module_hooks
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = [
    "fused_conv2d",
    "has_forward_hooks",
    "fused_linear",
    "fused_path_ok",
    "kernel_dtype",
    "memory_format_of",
    "upsample_bilinear_2x",
]

_FUSED_DTYPES = (torch.float32, torch.bfloat16)


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def has_forward_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` runs forward (pre-)hooks, its own or global ones: a fused
    kernel that bypasses ``module.__call__`` would skip them."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module_hooks._global_forward_hooks
        or module_hooks._global_forward_pre_hooks
    )


def fused_path_ok(x: torch.Tensor) -> bool:
    """Whether ``x`` may take the fused oneDNN kernels (see the module docstring)."""
    return (
        x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and x.dtype in _FUSED_DTYPES
        and torch.backends.mkldnn.is_available()
        and not _tracing()
        and _get_current_dispatch_mode() is None
    )


def kernel_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype a fused kernel runs in for input ``x``: autocast's on the CPU, else ``x``'s;
    None when the fused path does not apply (see :func:`fused_path_ok`) or the autocast dtype
    has no fused kernel (float16)."""
    if not fused_path_ok(x):
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        return dtype if dtype in _FUSED_DTYPES else None
    return x.dtype


def _cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


def fused_linear(
    layer: nn.Linear,
    x: torch.Tensor,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``layer(x)``, then ``+ residual`` when given, then ReLU when ``relu``, in one kernel.

    Args:
        layer: the linear layer (its own ``forward`` runs on the plain path, hooks included).
        x: (..., in_features).
        relu: apply ReLU last.
        residual: (..., out_features), added before the ReLU.

    Returns:
        (..., out_features), in the autocast dtype under CPU autocast.
    """
    dtype = kernel_dtype(x)
    if dtype is None or (relu and residual is not None) or has_forward_hooks(layer):
        out = layer(x)
        if residual is not None:
            out = out + residual
        return F.relu(out) if relu else out
    if residual is not None and residual.dtype != dtype:
        # e.g. a float32 residual stream under bfloat16 autocast: add it in its own precision,
        # as autocast's out-of-place add does
        return fused_linear(layer, x) + residual
    weight, bias = _cast(layer.weight, dtype), _cast(layer.bias, dtype)
    tokens = x.to(dtype).reshape(-1, x.shape[-1])
    if residual is not None:
        other = residual.reshape(tokens.shape[0], -1)
        out = torch.ops.mkldnn._linear_pointwise.binary(tokens, other, weight, bias, "add")
    else:
        out = torch.ops.mkldnn._linear_pointwise(
            tokens, weight, bias, "relu" if relu else "none", [], ""
        )
    return out.view(*x.shape[:-1], out.shape[-1])


def fused_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    conv: nn.Conv2d,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """``conv2d(x, weight, bias)`` with ``conv``'s stride, padding, dilation and groups, then
    ``+ residual`` when given, then ReLU when ``relu``, in one oneDNN kernel; None when the
    fused path does not apply (the caller then runs the plain ops).

    Args:
        x: (N, C_in, H, W).
        weight: (C_out, C_in / groups, kh, kw), e.g. with a batch norm folded in; best
            already in :func:`kernel_dtype` and ``x``'s memory format (else converted here).
        bias: (C_out,) or None.
        conv: the convolution whose geometry is used.
        relu: apply ReLU last.
        residual: (N, C_out, H', W'), added before the ReLU.

    Returns:
        (N, C_out, H', W') in ``x``'s memory format, or None.
    """
    dtype = kernel_dtype(x)
    if dtype is None or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    x, weight, bias = x.to(dtype), weight.to(dtype), _cast(bias, dtype)
    unary = "relu" if relu else "none"
    if residual is None:
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *geometry, unary, [], "")
    other = residual.to(dtype).contiguous(memory_format=memory_format_of(x))
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, weight, bias, *geometry, "add", None, unary if relu else None, [], None
    )


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a (strictly) channels-last 4-d tensor, else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def upsample_bilinear_2x(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``.

    For an exact 2x enlargement of a channels-last map on the fused path, the result is built
    in channels-last with two separable passes (each output pixel is 3/4 of its nearest input
    and 1/4 of the next, edges clamped): the CPU bilinear kernel copies channels-last maps to
    and from the contiguous layout (about 5x slower at 1/4 scale, measured).

    Args:
        x: (N, C, h, w).
        size: (H, W) of the output.

    Returns:
        (N, C, H, W); channels-last on the 2x path.
    """
    height, width = x.shape[-2:]
    if (
        tuple(size) != (2 * height, 2 * width)
        or not fused_path_ok(x)
        or not x.is_contiguous(memory_format=torch.channels_last)
    ):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    batch, channels = x.shape[:2]
    tall = torch.empty(
        (batch, channels, 2 * height, width),
        dtype=x.dtype,
        device=x.device,
        memory_format=torch.channels_last,
    )
    _interleave_2x(x, tall.unflatten(2, (height, 2)), dim=2)
    out = torch.empty(
        (batch, channels, 2 * height, 2 * width),
        dtype=x.dtype,
        device=x.device,
        memory_format=torch.channels_last,
    )
    _interleave_2x(tall, out.unflatten(3, (width, 2)), dim=3)
    return out


def _interleave_2x(x: torch.Tensor, pairs: torch.Tensor, dim: int) -> None:
    """Bilinear 2x along ``dim`` of ``x`` (size n) into ``pairs`` (that dim split as (n, 2)):
    output 2j is lerp(x_j, x_{j-1}, 1/4) and 2j + 1 is lerp(x_j, x_{j+1}, 1/4), with x_{-1} =
    x_0 and x_n = x_{n-1} (align_corners=False clamps at the edges)."""
    x = x.movedim(dim, -1)
    even, odd = pairs.movedim((dim, dim + 1), (-2, -1)).unbind(-1)
    torch.lerp(x[..., 1:], x[..., :-1], 0.25, out=even[..., 1:])
    even[..., 0] = x[..., 0]
    torch.lerp(x[..., :-1], x[..., 1:], 0.25, out=odd[..., :-1])
    odd[..., -1] = x[..., -1]
