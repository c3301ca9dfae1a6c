"""The one public multi-scale deformable attention op.

``ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations,
attention_weights)`` -> (N, Lq, heads * dim). Backends:

- ``cpu`` / ``cuda``: compiled kernels from ``csrc/ms_deform_attn`` (built on first use, see
  ``_msda_build``), registered as ``torch.ops.mask2former.ms_deform_attn_forward`` with
  autograd and fake implementations, so ``torch.compile`` / ``torch.export`` trace them;
- ``pytorch``: the grid_sample reference (``ms_deform_attn_reference``), always available.

By default the compiled kernel for the inputs' device is used when it builds, else the
reference. ``MASK2FORMER_MSDA_BACKEND=pytorch|cpu|cuda`` forces one (forcing an unavailable
one raises). The choice is logged once per device type. The CPU kernel's forward uses AVX-512
when the CPU has it; ``MASK2FORMER_MSDA_CPU_KERNEL=portable`` (read on every call) makes it
take the portable path instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Iterator

import torch

from mask2former.layers import _msda_build
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference

logger = logging.getLogger(__name__)

BACKEND_ENV = "MASK2FORMER_MSDA_BACKEND"
BACKENDS = ("pytorch", "cpu", "cuda")


@functools.cache
def select_backend(device_type: str) -> str:
    """The backend that runs inputs on ``device_type`` (resolved once per device type).

    Args:
        device_type: ``torch.device.type`` of the inputs, e.g. "cpu" or "cuda".

    Returns:
        One of ``BACKENDS``.

    Raises:
        ValueError: ``MASK2FORMER_MSDA_BACKEND`` holds an unknown name.
        RuntimeError: the forced backend cannot run inputs on ``device_type``.
    """
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced and forced not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={forced!r} is not one of {', '.join(BACKENDS)}")
    if forced == "pytorch":
        backend = "pytorch"
    elif forced:
        if forced != device_type:
            raise RuntimeError(
                f"{BACKEND_ENV}={forced} forces the {forced} kernel, but the inputs are on "
                f"{device_type}"
            )
        status = _msda_build.load_extension()
        if not status.loaded or (forced == "cuda" and not status.has_cuda):
            reason = status.origin if not status.loaded else "built without CUDA kernels"
            raise RuntimeError(
                f"{BACKEND_ENV}={forced} but the compiled {forced} kernel is unavailable: {reason}"
            )
        backend = forced
    elif device_type in ("cpu", "cuda"):
        status = _msda_build.load_extension()
        compiled = status.loaded and (device_type == "cpu" or status.has_cuda)
        backend = device_type if compiled else "pytorch"
    else:
        backend = "pytorch"
    how = "forced by " + BACKEND_ENV if forced else "automatic"
    logger.info("MSDeformAttn backend for %s inputs: %s (%s)", device_type, backend, how)
    return backend


# Set by ``use_reference_backend`` for the block it guards (this thread / task only).
_reference_forced = contextvars.ContextVar("mask2former_msda_reference_forced", default=False)


@contextlib.contextmanager
def use_reference_backend() -> Iterator[None]:
    """Run ``ms_deform_attn`` through the PyTorch reference inside the block.

    For exporters that cannot carry the compiled op (ONNX has no kernel for it): the traced
    graph then holds standard ops (``grid_sample``). Outside the block the usual choice holds.
    """
    token = _reference_forced.set(True)
    try:
        yield
    finally:
        _reference_forced.reset(token)


@torch.compiler.assume_constant_result
def _backend_for(device_type: str) -> str:
    # Runs eagerly even under torch.compile: the lookup (which may build) is not traced.
    return "pytorch" if _reference_forced.get() else select_backend(device_type)


# Value dtypes the CPU kernel reads in place, beside float32 locations and weights.
_READS_16_BIT = (torch.bfloat16, torch.float16)


def _forward_16_bit_value_cpu(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The CPU kernel on a 16-bit ``value`` as it is (no float32 copy of the largest input),
    with float32 locations and weights: bit for bit the float32 computation on the upcast
    value. The dtype of the result follows ``ms_deform_attn``'s rule (float32 under autocast).
    """
    autocast_on = torch.is_autocast_enabled("cpu")
    # The op's autocast rule would upcast the value: call it with autocast off.
    with torch.autocast("cpu", enabled=False):
        output = torch.ops.mask2former.ms_deform_attn_forward(
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations.float(),
            attention_weights.float(),
        )
    return output if autocast_on else output.to(value.dtype)


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention: bilinear samples (zero padding,
    ``grid_sample(align_corners=False)``) weighted and summed over levels and points.

    Args:
        value: (N, S, heads, dim), S = sum over levels of H_l * W_l.
        spatial_shapes: (L, 2) int64 (H_l, W_l).
        level_start_index: (L,) int64, offset of each level in S.
        sampling_locations: (N, Lq, heads, L, P, 2) normalised (x, y), [0, 1] inside the map.
        attention_weights: (N, Lq, heads, L, P).

    Returns:
        (N, Lq, heads * dim), in ``value``'s dtype (float32 under autocast).

    Precision: the floating inputs may differ in dtype (e.g. a bfloat16 ``value`` with float32
    locations); they are then all computed in float32, because a 16-bit sampling location is
    off by up to a few pixels on large feature maps. Under ``torch.autocast`` the op runs in
    float32 and returns float32 (its autocast rule, registered with ``torch.library``).
    In inference the CPU kernel reads a bfloat16 / float16 ``value`` without converting it
    (same result as on its float32 upcast).
    """
    backend = _backend_for(value.device.type)
    if (
        backend == "cpu"
        and value.dtype in _READS_16_BIT
        and not (torch.is_grad_enabled() and value.requires_grad)
    ):
        return _forward_16_bit_value_cpu(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    mixed = not (value.dtype == sampling_locations.dtype == attention_weights.dtype)
    if mixed:
        output = ms_deform_attn(
            value.float(),
            spatial_shapes,
            level_start_index,
            sampling_locations.float(),
            attention_weights.float(),
        )
        autocast_on = torch.is_autocast_enabled(value.device.type)
        return output if autocast_on else output.to(value.dtype)
    if backend == "pytorch":
        return ms_deform_attn_reference(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    return torch.ops.mask2former.ms_deform_attn_forward(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )
