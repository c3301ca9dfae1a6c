"""Caffe2-style weight initialisations used by the original heads and backbones."""

from __future__ import annotations

from torch import nn


def c2_xavier_fill(module: nn.Module) -> None:
    """Caffe2 "XavierFill": uniform with bound sqrt(3 / fan_in); bias zero."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


def c2_msra_fill(module: nn.Module) -> None:
    """Caffe2 "MSRAFill": normal with std sqrt(2 / fan_out); bias zero."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)
