"""FLOP counts with ``torch.utils.flop_counter.FlopCounterMode`` (``tools/analyze_model.py``).

The model runs eagerly under the counter (no ``torch.jit`` tracing). torch counts matrix
products and convolutions; formulas are added here for what fvcore's default table also
counted, so the totals stay comparable with it: multi-scale deformable attention (kernel op or
reference ``grid_sampler_2d``), batch / group / layer norm, bilinear and nearest upsampling and
adaptive average pooling (fvcore's formulas for those).

One multiply-add counts as one FLOP (fvcore's and the papers' convention); torch's counter
counts two, so the formulas below return two per multiply-add and the results are halved.

MSDeformAttn counts, per sampled point and channel, 4 multiply-adds for the bilinear
interpolation and 1 for the attention weighting, whichever backend runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tabulate import tabulate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mask2former.layers.ms_deform_attn import select_backend

__all__ = ["FlopCounts", "count_flops", "flop_formulas", "flop_table"]

_TORCH_FLOPS_PER_MAC = 2
# Multiply-adds per sampled point and channel: 4 bilinear corner weights + 1 attention weight.
_MSDA_MACS_PER_SAMPLE = 5
aten = torch.ops.aten


def _macs(count: int) -> int:
    return _TORCH_FLOPS_PER_MAC * count


def _msda_kernel(value, spatial_shapes, level_start_index, locations, weights, **_) -> int:
    """value (N, S, M, D), attention weights (N, Lq, M, L, P)."""
    return _macs(_MSDA_MACS_PER_SAMPLE * math.prod(weights) * value[-1])


def _grid_sampler(*_, out_shape, **__) -> int:
    """One level of the reference: output (N*M, D, Lq, P), one sample per element."""
    return _macs(_MSDA_MACS_PER_SAMPLE * math.prod(out_shape))


def _per_output_element(macs: int) -> Callable[..., int]:
    def formula(*_, out_shape, **__) -> int:
        return _macs(macs * math.prod(out_shape))

    return formula


def _adaptive_avg_pool(input_shape, *_, **__) -> int:
    return _macs(math.prod(input_shape))


def _norm(input_shape, weight_shape) -> int:
    # fvcore: mean, variance, normalise (4 per element), plus 1 for an affine transform.
    return _macs(math.prod(input_shape) * (5 if weight_shape is not None else 4))


def _group_norm(input_shape, weight_shape, *_, **__) -> int:
    return _norm(input_shape, weight_shape)


def _layer_norm(input_shape, normalized_shape, weight_shape, *_, **__) -> int:
    return _norm(input_shape, weight_shape)


def _batch_norm_eval(input_shape, weight_shape, *_, **__) -> int:
    # Running statistics: scale and shift only (fvcore's inference count).
    return _macs(math.prod(input_shape) * (2 if weight_shape is not None else 1))


def _batch_norm(input_shape, weight_shape, bias, mean, var, training, *_, **__) -> int:
    if training:
        return _norm(input_shape, weight_shape)
    return _batch_norm_eval(input_shape, weight_shape)


def flop_formulas() -> dict[Any, Callable[..., int]]:
    """``FlopCounterMode`` ``custom_mapping``: op (packet and overloads) -> formula over
    argument shapes."""
    formulas: dict[Any, Callable[..., int]] = {
        aten.grid_sampler_2d: _grid_sampler,
        aten.upsample_bilinear2d: _per_output_element(4),
        aten.upsample_nearest2d: _per_output_element(1),
        aten._adaptive_avg_pool2d: _adaptive_avg_pool,
        aten.native_group_norm: _group_norm,
        aten.native_layer_norm: _layer_norm,
        aten.native_batch_norm: _batch_norm,
        aten._native_batch_norm_legit_no_training: _batch_norm_eval,
    }
    # The kernel op exists once its library is loaded (select_backend loads it when chosen).
    if hasattr(torch.ops.mask2former, "ms_deform_attn_forward"):
        formulas[torch.ops.mask2former.ms_deform_attn_forward] = _msda_kernel
    # The counter looks formulas up by op packet, but decomposes any overload that is not a
    # key first (upsample_nearest2d would vanish into indexing ops): list the overloads too.
    for packet, formula in list(formulas.items()):
        for overload in packet.overloads():
            formulas[getattr(packet, overload)] = formula
    return formulas


@dataclass
class FlopCounts:
    """FLOPs (multiply-adds) of one forward pass.

    Attributes:
        total: all counted operators.
        by_operator: operator name (e.g. "convolution", "ms_deform_attn_forward") -> FLOPs.
        by_module: module name ("" = the model, "backbone", "backbone.res2", ...) -> FLOPs.
    """

    total: float
    by_operator: dict[str, float]
    by_module: dict[str, float]


def count_flops(model: nn.Module, *inputs: Any) -> FlopCounts:
    """Run ``model(*inputs)`` under ``FlopCounterMode`` and collect its FLOPs.

    Args:
        model: any module; a MaskFormer takes one ``list[dict]`` with "image" (C, H, W).
        inputs: its arguments.
    """
    # Resolve the MSDeformAttn backend first, so that a kernel op it loads has its formula.
    parameter = next(model.parameters(), None)
    select_backend(parameter.device.type if parameter is not None else "cpu")
    counter = FlopCounterMode(display=False, custom_mapping=flop_formulas())
    with counter:
        model(*inputs)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    by_module = {}
    for name, counts in per_module.items():
        if name == "Global":
            continue
        key = "" if name == root else name.removeprefix(root + ".")
        by_module[key] = sum(counts.values()) / _TORCH_FLOPS_PER_MAC
    by_operator = {
        packet.__name__: flops / _TORCH_FLOPS_PER_MAC
        for packet, flops in per_module["Global"].items()
    }
    return FlopCounts(
        total=counter.get_total_flops() / _TORCH_FLOPS_PER_MAC,
        by_operator=by_operator,
        by_module=by_module,
    )


def flop_table(model: nn.Module, counts: FlopCounts, max_depth: int = 3) -> str:
    """Modules down to ``max_depth`` with their parameters and FLOPs, as a Markdown table."""
    rows = []
    for name, module in model.named_modules():
        depth = 0 if name == "" else name.count(".") + 1
        if depth > max_depth:
            continue
        num_params = sum(p.numel() for p in module.parameters())
        flops = _module_flops(counts.by_module, name)
        if depth > 0 and not num_params and not flops:
            continue
        label = "model" if name == "" else "  " * (depth - 1) + name
        rows.append([label, _human(num_params), _human(flops)])
    return tabulate(rows, headers=["module", "#parameters", "#flops"], tablefmt="pipe")


def _module_flops(by_module: dict[str, float], name: str) -> float:
    """FLOPs of a module; for one run through a method other than ``forward`` (the pixel
    decoder's ``forward_features``), the sum over its outermost submodules that were called."""
    if name in by_module:
        return by_module[name]
    prefix = name + "." if name else ""
    inside = [key for key in by_module if key.startswith(prefix) and key != name]
    outermost = [key for key in inside if not any(key.startswith(other + ".") for other in inside)]
    return sum(by_module[key] for key in outermost)


def _human(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"
