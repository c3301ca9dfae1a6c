"""Small layer wrappers shared by backbones and heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from mask2former.layers.batch_norm import batch_norm_scale_shift
from mask2former.layers.inference_ops import (
    fused_conv2d,
    has_forward_hooks,
    kernel_dtype,
    memory_format_of,
)
from mask2former.layers.winograd import winograd_applies, winograd_conv3x3, winograd_weight


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def _tensor_key(tensor: torch.Tensor | None) -> tuple:
    # _version moves on every in-place write (load_state_dict copies in place); data_ptr,
    # dtype and device move on .to(), .half() and ``param.data = ...``.
    if tensor is None:
        return ()
    return (tensor.data_ptr(), tensor._version, tensor.dtype, tensor.device, tensor.shape)


def flatten_spatial(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H * W, C) tokens; a view (no copy) for contiguous and channels-last
    maps alike."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional ``norm`` submodule and ``activation`` callable.

    The norm is registered as ``<name>.norm`` so checkpoint keys read
    ``backbone.res2.0.conv1.norm.running_mean`` as in detectron2.

    At inference (module in eval mode and autograd off, e.g. under ``torch.no_grad()`` or
    ``torch.inference_mode()``), a frozen or eval-mode batch norm is folded into the
    convolution: one conv with ``weight * scale`` and ``bias * scale + shift``. The folded
    tensors are cached on the module (not in its state dict) and recomputed whenever a weight
    or norm buffer changes (``load_state_dict``, ``.to()``, in-place edits). Training and any
    forward that records gradients run the conv and the norm separately, as written.
    """

    def __init__(
        self,
        *args,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation
        self._folded: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        # (key, weight, bias) in a fused kernel's dtype and memory format (see forward_fused)
        self._kernel_weights: tuple[tuple, torch.Tensor, torch.Tensor | None] | None = None
        # (key, Winograd-transformed weight (16, C_in, C_out)), see _winograd
        self._winograd_weights: tuple[tuple, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, H', W')."""
        if self.activation is None or self.activation is F.relu:
            return self._conv_norm_fused(x, relu=self.activation is F.relu)
        return self.activation(self._conv_and_norm(x, self._inference_weight_and_bias()))

    def forward_fused(
        self, x: torch.Tensor, *, relu: bool = False, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``conv -> norm``, then ``+ residual`` when given, then ReLU when ``relu`` (the
        module's own ``activation`` is not applied).

        At inference on the CPU, with the norm folded (or absent), this is one oneDNN kernel
        (``mask2former.layers.inference_ops``); otherwise the same ops run one by one.

        Args:
            x: (N, C_in, H, W).
            relu: apply ReLU last.
            residual: (N, C_out, H', W'), added before the ReLU.

        Returns:
            (N, C_out, H', W').
        """
        if has_forward_hooks(self):
            # through __call__ so that the hooks see the module's own output (conv -> norm)
            out = self(x)
            if residual is not None:
                out = out + residual
            return F.relu(out) if relu else out
        return self._conv_norm_fused(x, relu=relu, residual=residual)

    def _conv_norm_fused(
        self, x: torch.Tensor, *, relu: bool = False, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        folded = self._inference_weight_and_bias()
        dtype = kernel_dtype(x)
        if folded is not None and dtype is not None:
            if residual is None:
                out = self._winograd(x, *folded, dtype, relu=relu)
                if out is not None:
                    return out
            weight, bias = self._weights_for_kernel(*folded, dtype, memory_format_of(x))
            out = fused_conv2d(x, weight, bias, self, relu=relu, residual=residual)
            if out is not None:
                return out
        out = self._conv_and_norm(x, folded)
        if residual is not None:
            out = out + residual
        return F.relu_(out) if relu else out

    def _conv_and_norm(
        self, x: torch.Tensor, folded: tuple[torch.Tensor, torch.Tensor | None] | None
    ) -> torch.Tensor:
        # ``folded``: from _inference_weight_and_bias (None: run the norm as a module)
        if folded is not None:
            return F.conv2d(x, *folded, self.stride, self.padding, self.dilation, self.groups)
        dtype = kernel_dtype(x)
        out = None if dtype is None else self._winograd(x, self.weight, self.bias, dtype)
        if out is None:
            out = F.conv2d(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        return out if self.norm is None else self.norm(out)

    def _winograd(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
        *,
        relu: bool = False,
    ) -> torch.Tensor | None:
        """``conv2d(x, weight, bias)`` (then ReLU) by Winograd F(2x2, 3x3) in ``dtype`` (the
        fused path's, from ``kernel_dtype``) where it is faster
        (``mask2former.layers.winograd``); None elsewhere, in training and under hooks."""
        if self.training or has_forward_hooks(self) or not winograd_applies(self, x, dtype):
            return None
        key = (_tensor_key(weight), dtype)
        if self._winograd_weights is None or self._winograd_weights[0] != key:
            self._winograd_weights = (key, winograd_weight(weight, dtype))
        bias = None if bias is None else bias.float()
        return winograd_conv3x3(x, self._winograd_weights[1], bias, relu=relu, out_dtype=dtype)

    def _weights_for_kernel(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
        memory_format: torch.memory_format,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The kernel would otherwise convert the weight on every call: to the input's layout
        # (a copy for every 3x3 channels-last conv) and, under autocast, to bfloat16.
        key = (_tensor_key(weight), _tensor_key(bias), dtype, memory_format)
        if self._kernel_weights is None or self._kernel_weights[0] != key:
            converted = weight.to(dtype).contiguous(memory_format=memory_format)
            self._kernel_weights = (key, converted, None if bias is None else bias.to(dtype))
        return self._kernel_weights[1], self._kernel_weights[2]

    def _inference_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """(weight, bias) of the conv with its norm folded in at inference, the conv's own when
        it has no norm, or None when the norm must run as a module."""
        if self.norm is None:
            return self.weight, self.bias
        if self.training or torch.is_grad_enabled():
            return None
        return self._folded_weight_and_bias()

    def _folded_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(weight (C_out, C_in / groups, kh, kw), bias (C_out,)) with the norm folded in, or
        None when the norm is not an inference-time affine map."""
        norm = self.norm
        if _tracing():
            # Traced graphs (torch.compile, export) get the fold as plain ops, never a cache.
            scale_shift = batch_norm_scale_shift(norm, self.weight.dtype)
            if scale_shift is None:
                return None
            return self._fold(*scale_shift)
        buffers = [getattr(norm, name, None) for name in ("weight", "bias")]
        buffers += [getattr(norm, name, None) for name in ("running_mean", "running_var")]
        key = tuple(_tensor_key(t) for t in [self.weight, self.bias, *buffers])
        key += (getattr(norm, "eps", None), type(norm), norm.training)
        if self._folded is not None and self._folded[0] == key:
            return self._folded[1], self._folded[2]
        # The fold is computed in float64 where the device has it, then rounded once.
        exact = torch.float64 if self.weight.device.type in ("cpu", "cuda") else None
        scale_shift = batch_norm_scale_shift(norm, exact or self.weight.dtype)
        if scale_shift is None:
            self._folded = None
            return None
        weight, bias = self._fold(*scale_shift)
        self._folded = (key, weight, bias)
        return weight, bias

    def _fold(self, scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # conv(x, W) * s + t == conv(x, W * s) + (b * s + t), per output channel.
        weight = self.weight.to(scale.dtype) * scale.view(-1, 1, 1, 1)
        bias = shift if self.bias is None else self.bias.to(scale.dtype) * scale + shift
        return weight.to(self.weight.dtype).detach(), bias.to(self.weight.dtype).detach()
