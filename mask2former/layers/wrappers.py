"""Small layer wrappers shared by backbones and heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional ``norm`` submodule and ``activation`` callable.

    The norm is registered as ``<name>.norm`` so checkpoint keys read
    ``backbone.res2.0.conv1.norm.running_mean`` as in detectron2.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, H', W')."""
        x = F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
