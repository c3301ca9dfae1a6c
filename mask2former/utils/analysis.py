"""Model statistics with fvcore: parameters, FLOPs, activations (``tools/analyze_model.py``).

fvcore traces the model with ``torch.jit``; :class:`TracingAdapter` turns the detectron2-style
list-of-dicts interface into tensors in and tensors out. Multi-scale deformable attention gets
its own FLOP handle whichever way it shows up in the traced graph:

- the compiled kernel, op ``mask2former::ms_deform_attn_forward``;
- the PyTorch reference, one ``aten::grid_sampler`` per feature level.

Both count, per sampled point and channel, 4 multiply-adds for the bilinear interpolation and
1 for the attention weighting, so the totals agree between backends. (fvcore's default
``grid_sampler`` handle counts only the 4; the weighting there is an elementwise multiply and
sum, which fvcore does not count.)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

from mask2former.structures import Boxes, Instances

__all__ = [
    "MSDA_OP_NAME",
    "TracingAdapter",
    "activation_count_analysis",
    "flop_count_analysis",
    "msda_flop_jit",
    "grid_sampler_flop_jit",
    "parameter_counts",
]

MSDA_OP_NAME = "mask2former::ms_deform_attn_forward"
# Multiply-adds per sampled point and channel: 4 bilinear corner weights + 1 attention weight.
_MACS_PER_SAMPLE = 5


def msda_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """FLOPs of the MSDeformAttn kernel op.

    Inputs are (value (N, S, M, D), spatial_shapes, level_start_index, sampling_locations
    (N, Lq, M, L, P, 2), attention_weights (N, Lq, M, L, P)).
    """
    value_shape = get_shape(inputs[0])
    weight_shape = get_shape(inputs[4])
    return _MACS_PER_SAMPLE * math.prod(weight_shape) * value_shape[-1]


def grid_sampler_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """FLOPs of one ``grid_sample`` of the MSDeformAttn reference: output (N*M, D, Lq, P)."""
    return _MACS_PER_SAMPLE * math.prod(get_shape(outputs[0]))


def msda_activation_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """Activations of the MSDeformAttn kernel op: its output (N, Lq, M*D)."""
    return math.prod(get_shape(outputs[0]))


def _flatten_outputs(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor of a model output (dicts, lists, tuples, Instances, Boxes), in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Instances):
        for name in sorted(obj.get_fields()):
            yield from _flatten_outputs(obj.get(name))
    elif isinstance(obj, Boxes):
        yield obj.tensor
    elif isinstance(obj, dict):
        for key in sorted(obj):
            yield from _flatten_outputs(obj[key])
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _flatten_outputs(item)


class TracingAdapter(nn.Module):
    """Call ``model`` on ``inputs`` with the images as the traced tensors.

    Args:
        model: a model taking ``list[dict]`` with "image" (C, H, W) (plus e.g. "height").
        inputs: the batched inputs; their images are replaced by the traced arguments.
    """

    def __init__(self, model: nn.Module, inputs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs

    def flattened_images(self) -> tuple[torch.Tensor, ...]:
        return tuple(x["image"] for x in self.inputs)

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batched = [dict(x, image=image) for x, image in zip(self.inputs, images)]
        return tuple(_flatten_outputs(self.model(batched)))


def flop_count_analysis(model: nn.Module, inputs: list[dict[str, Any]]) -> FlopCountAnalysis:
    """fvcore FLOP analysis of ``model(inputs)`` with the MSDeformAttn handles."""
    adapter = TracingAdapter(model, inputs)
    analysis = FlopCountAnalysis(adapter, adapter.flattened_images())
    analysis.set_op_handle(MSDA_OP_NAME, msda_flop_jit)
    analysis.set_op_handle("aten::grid_sampler", grid_sampler_flop_jit)
    return analysis


def activation_count_analysis(
    model: nn.Module, inputs: list[dict[str, Any]]
) -> ActivationCountAnalysis:
    """fvcore activation analysis of ``model(inputs)`` counting the MSDeformAttn output too."""
    adapter = TracingAdapter(model, inputs)
    analysis = ActivationCountAnalysis(adapter, adapter.flattened_images())
    analysis.set_op_handle(MSDA_OP_NAME, msda_activation_jit)
    return analysis


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
