"""Normalization layers and the name -> layer factory used by ``MODEL.*.NORM`` keys."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all stored as buffers).

    Computes ``x * scale + shift`` with ``scale = weight / sqrt(running_var + eps)`` and
    ``shift = bias - running_mean * scale``, the same arithmetic as detectron2, so outputs
    match checkpoints trained there bit for bit.
    """

    _version = 3

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)
        # Filled only when converted from a BatchNorm that tracked it, so the frozen stages of
        # a converted model keep the same state-dict keys as detectron2's.
        self.register_buffer("num_batches_tracked", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C, H, W). Returns: (N, C, H, W)."""
        if x.requires_grad:
            # Keep the graph free of batch-norm kernels: a plain affine transform.
            scale = self.weight * (self.running_var + self.eps).rsqrt()
            shift = self.bias - self.running_mean * scale
            out_dtype = x.dtype
            return x * scale.to(out_dtype).view(1, -1, 1, 1) + shift.to(out_dtype).view(1, -1, 1, 1)
        return nn.functional.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps
        )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            # Very old checkpoints carried no running statistics.
            if prefix + "running_mean" not in state_dict:
                state_dict[prefix + "running_mean"] = torch.zeros_like(self.running_mean)
            if prefix + "running_var" not in state_dict:
                state_dict[prefix + "running_var"] = torch.ones_like(self.running_var)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d(num_features={self.num_features}, eps={self.eps})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Return ``module`` with every BatchNorm2d/SyncBatchNorm replaced by a frozen copy."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = cls(module.num_features, eps=module.eps)
            if module.affine:
                frozen.weight.data = module.weight.data.clone().detach()
                frozen.bias.data = module.bias.data.clone().detach()
            frozen.running_mean.data = module.running_mean.data
            frozen.running_var.data = module.running_var.data
            frozen.num_batches_tracked = module.num_batches_tracked
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


def batch_norm_scale_shift(
    norm: nn.Module, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The inference-time affine map ``y = x * scale + shift`` of a batch norm, or None.

    Defined for :class:`FrozenBatchNorm2d` and for an eval-mode ``BatchNorm2d`` /
    ``SyncBatchNorm`` that tracks running statistics; None for anything else (a training-mode
    batch norm, GroupNorm, ...), which must then run as a module.

    Args:
        norm: the normalization module.
        dtype: dtype of the computation and of the results.

    Returns:
        (scale (C,), shift (C,)) in ``dtype``, detached.
    """
    if isinstance(norm, FrozenBatchNorm2d):
        weight, bias = norm.weight, norm.bias
    elif isinstance(norm, nn.modules.batchnorm._BatchNorm):
        if norm.training or norm.running_mean is None or norm.running_var is None:
            return None
        weight, bias = norm.weight, norm.bias
    else:
        return None
    running_var = norm.running_var.detach().to(dtype)
    scale = (running_var + norm.eps).rsqrt()
    if weight is not None:
        scale = scale * weight.detach().to(dtype)
    shift = -norm.running_mean.detach().to(dtype) * scale
    if bias is not None:
        shift = shift + bias.detach().to(dtype)
    return scale, shift


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(32, channels)


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "BN": nn.BatchNorm2d,
    "SyncBN": nn.SyncBatchNorm,
    "nnSyncBN": nn.SyncBatchNorm,
    "FrozenBN": FrozenBatchNorm2d,
    "GN": _group_norm,
}


def get_norm(norm: str | Callable[[int], nn.Module] | None, out_channels: int) -> nn.Module | None:
    """Build a normalization layer by name ("", "BN", "SyncBN", "FrozenBN", "GN") or factory.

    Returns ``None`` for an empty name.
    """
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        if norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {sorted(_NORMS)} or ''")
        return _NORMS[norm](out_channels)
    return norm(out_channels)
