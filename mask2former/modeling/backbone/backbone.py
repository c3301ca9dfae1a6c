"""Backbone base class: features as ``dict[name, Tensor]`` described by ``output_shape()``."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
from torch import nn

from mask2former.layers.shape_spec import ShapeSpec


class Backbone(nn.Module, metaclass=ABCMeta):
    """Abstract backbone.

    Subclasses set ``self._out_features`` (e.g. ``["res2", "res3", "res4", "res5"]``),
    ``self._out_feature_channels`` and ``self._out_feature_strides`` (name -> int).
    """

    _out_features: list[str]
    _out_feature_channels: dict[str, int]
    _out_feature_strides: dict[str, int]

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x (N, C, H, W). Returns: feature name -> (N, C_i, H / s_i, W / s_i)."""

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be divisible by this (0: no constraint)."""
        return 0

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name],
                stride=self._out_feature_strides[name],
            )
            for name in self._out_features
        }
