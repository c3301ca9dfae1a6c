"""Model statistics for ``tools/analyze_model.py``: parameter counts and activations.

Activations are counted as fvcore's default table counted them, the output elements of
convolutions, matrix products (linear layers, einsum, matmul) and the MSDeformAttn kernel op,
but by watching the dispatched ops of an eager run (no ``torch.jit`` tracing). FLOPs are in
:mod:`mask2former.modeling.flop_count`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mask2former.layers.ms_deform_attn import select_backend

__all__ = ["build_model_on_meta", "count_activations", "parameter_counts"]

aten = torch.ops.aten
# Ops whose outputs count: convolutions and the matrix products that linear layers, einsum
# and matmul dispatch to.
_ACTIVATION_OPS = {aten.convolution, aten.addmm, aten.mm, aten.bmm, aten.baddbmm}


class _ActivationCounter(TorchDispatchMode):
    def __init__(self, ops: set[Any]) -> None:
        super().__init__()
        self.ops = ops
        self.by_operator: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in self.ops:
            self.by_operator[func.overloadpacket.__name__] += out.numel()
        return out


def count_activations(model: nn.Module, *inputs: Any) -> dict[str, int]:
    """Output elements of the counted ops in ``model(*inputs)``, by operator name."""
    parameter = next(model.parameters(), None)
    select_backend(parameter.device.type if parameter is not None else "cpu")
    ops = set(_ACTIVATION_OPS)
    if hasattr(torch.ops.mask2former, "ms_deform_attn_forward"):
        ops.add(torch.ops.mask2former.ms_deform_attn_forward)
    counter = _ActivationCounter(ops)
    with counter:
        model(*inputs)
    return dict(counter.by_operator)


def build_model_on_meta(cfg: Any) -> nn.Module:
    """The model of ``cfg`` without allocating or initialising weights (enough to count and
    print it)."""
    from mask2former.modeling import build_model

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        return build_model(cfg)


def parameter_counts(model: nn.Module) -> OrderedDict[str, int]:
    """Parameter counts: "" (total) then each top-level child module with parameters."""
    counts: OrderedDict[str, int] = OrderedDict()
    counts[""] = sum(p.numel() for p in model.parameters())
    for name, child in model.named_children():
        num = sum(p.numel() for p in child.parameters())
        if num:
            counts[name] = num
    return counts
