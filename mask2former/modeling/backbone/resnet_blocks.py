"""ResNet building blocks with detectron2's parameter names: the basic and bottleneck residual
blocks and the two stems (7x7 "basic" and the three-3x3-conv "deeplab" one). ``ResNet``
(resnet.py) stacks them.
"""

from __future__ import annotations

import torch
from fvcore.nn.weight_init import c2_msra_fill
from torch import nn
from torch.nn import functional as F

from mask2former.layers.batch_norm import FrozenBatchNorm2d, get_norm
from mask2former.layers.wrappers import Conv2d


class CNNBlockBase(nn.Module):
    """A block with known ``in_channels``, ``out_channels`` and ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> CNNBlockBase:
        """Stop gradients to every parameter and turn BatchNorm layers into FrozenBN."""
        for param in self.parameters():
            param.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


def _projection_shortcut(
    in_channels: int, out_channels: int, stride: int, norm: str
) -> Conv2d | None:
    """1x1 conv + norm matching the residual's channels and stride; None when they match."""
    if in_channels == out_channels:
        return None
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size=1,
        stride=stride,
        bias=False,
        norm=get_norm(norm, out_channels),
    )


class BasicBlock(CNNBlockBase):
    """Two 3x3 convs (ResNet-18/34) with a 1x1 projection shortcut when channels change."""

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int = 1, norm: str = "BN"
    ) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels,
            out_channels,
            kernel_size=3,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, H / stride, W / stride)."""
        out = self.conv1.forward_fused(x, relu=True)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        # one fused kernel at inference: conv, folded norm, residual add, ReLU
        return self.conv2.forward_fused(out, relu=True, residual=shortcut)


class BottleneckBlock(CNNBlockBase):
    """1x1 -> 3x3 (grouped, dilated) -> 1x1 convs with a projection shortcut if needed.

    Args:
        stride_in_1x1: put the stride on the first 1x1 conv (MSRA/Caffe2 weights) instead of
            the 3x3 conv (torchvision weights).
        dilation: dilation (and padding) of the 3x3 conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels,
            bottleneck_channels,
            kernel_size=1,
            stride=stride_1x1,
            bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv2 = Conv2d(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels,
            out_channels,
            kernel_size=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, H / stride, W / stride)."""
        out = self.conv1.forward_fused(x, relu=True)
        out = self.conv2.forward_fused(out, relu=True)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        # one fused kernel at inference: conv, folded norm, residual add, ReLU
        return self.conv3.forward_fused(out, relu=True, residual=shortcut)


class BasicStem(CNNBlockBase):
    """7x7 stride-2 conv, ReLU, 3x3 stride-2 max-pool (total stride 4)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "BN") -> None:
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(
            in_channels,
            out_channels,
            kernel_size=7,
            stride=2,
            padding=3,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, ~H / 4, ~W / 4)."""
        x = self.conv1.forward_fused(x, relu=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class DeepLabStem(CNNBlockBase):
    """Three 3x3 convs (stride 2, 1, 1; widths C/2, C/2, C), ReLU each, 3x3 stride-2 max-pool."""

    def __init__(self, in_channels: int = 3, out_channels: int = 128, norm: str = "BN") -> None:
        super().__init__(in_channels, out_channels, 4)
        mid_channels = out_channels // 2
        self.conv1 = Conv2d(
            in_channels,
            mid_channels,
            kernel_size=3,
            stride=2,
            padding=1,
            bias=False,
            norm=get_norm(norm, mid_channels),
        )
        self.conv2 = Conv2d(
            mid_channels,
            mid_channels,
            kernel_size=3,
            padding=1,
            bias=False,
            norm=get_norm(norm, mid_channels),
        )
        self.conv3 = Conv2d(
            mid_channels,
            out_channels,
            kernel_size=3,
            padding=1,
            bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.conv3):
            c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (N, C_in, H, W). Returns: (N, C_out, ~H / 4, ~W / 4)."""
        x = self.conv1.forward_fused(x, relu=True)
        x = self.conv2.forward_fused(x, relu=True)
        x = self.conv3.forward_fused(x, relu=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
