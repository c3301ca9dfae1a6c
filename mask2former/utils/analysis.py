"""Model statistics: parameter counts and activations (fvcore), see ``tools/analyze_model.py``.

FLOPs are counted by :mod:`mask2former.utils.flop_count`. fvcore's activation count traces the
model with ``torch.jit``; :class:`TracingAdapter` turns the detectron2-style list-of-dicts
interface into tensors in and tensors out. The MSDeformAttn kernel op counts its output.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from fvcore.nn import ActivationCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

from mask2former.structures import Boxes, Instances

__all__ = [
    "MSDA_OP_NAME",
    "TracingAdapter",
    "activation_count_analysis",
    "build_model_on_meta",
    "parameter_counts",
]

MSDA_OP_NAME = "mask2former::ms_deform_attn_forward"


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
