"""Python registrations for the compiled ``mask2former::ms_deform_attn_*`` ops.

The C++ library defines the op schemas and the CPU / CUDA kernels; this module adds the
fake (meta) implementations, which let ``torch.compile`` / ``torch.export`` trace the ops
without running them, the autograd formula (forward op -> backward op) and the autocast rule
(the forward runs in float32).
"""

from __future__ import annotations

import functools

import torch

FORWARD = "mask2former::ms_deform_attn_forward"
BACKWARD = "mask2former::ms_deform_attn_backward"


def _forward_fake(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    batch, _, heads, dim = value.shape
    # A 16-bit value with float32 locations (CPU) gives a float32 output.
    dtype = torch.promote_types(value.dtype, sampling_locations.dtype)
    return value.new_empty((batch, sampling_locations.shape[1], heads * dim), dtype=dtype)


def _backward_fake(
    grad_output: torch.Tensor,
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The kernels return contiguous gradients whatever the input strides.
    return (
        value.new_empty(value.shape),
        sampling_locations.new_empty(sampling_locations.shape),
        attention_weights.new_empty(attention_weights.shape),
    )


def _setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_output: torch.Tensor) -> tuple:
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = (
        ctx.saved_tensors
    )
    # The backward kernels take one dtype: a 16-bit value that came with float32 locations
    # is upcast (exactly), and its gradient rounded back, as autocast's cast would do.
    compute_value = value.to(sampling_locations.dtype)
    grad_value, grad_locations, grad_weights = torch.ops.mask2former.ms_deform_attn_backward(
        grad_output.to(sampling_locations.dtype).contiguous(),
        compute_value,
        spatial_shapes,
        level_start_index,
        sampling_locations,
        attention_weights,
    )
    return grad_value.to(value.dtype), None, None, grad_locations, grad_weights


@functools.cache
def register_python_impls() -> None:
    """Registers the fake implementations and autograd once (after the library is loaded)."""
    torch.library.register_fake(FORWARD, _forward_fake)
    torch.library.register_fake(BACKWARD, _backward_fake)
    torch.library.register_autograd(FORWARD, _backward, setup_context=_setup_context)
    # Under autocast the op runs in float32: 16-bit sampling locations lose sub-pixel precision,
    # and the CPU kernel accumulates in float32 anyway. (``ms_deform_attn`` hands the CPU
    # kernel a 16-bit value as it is, around this rule.)
    for device_type in ("cpu", "cuda"):
        torch.library.register_autocast(FORWARD, device_type, torch.float32)
