"""Description of a feature map produced by a backbone or consumed by a head."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride of a feature map; unknown fields stay ``None``.

    Attributes:
        channels: number of channels.
        height: spatial height, when fixed.
        width: spatial width, when fixed.
        stride: total downsampling factor relative to the input image.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None
