"""The plain FPN pixel decoder (MaskFormer's) and the pixel-decoder builder."""

from __future__ import annotations

from collections.abc import Callable

import torch
from fvcore.nn.weight_init import c2_xavier_fill
from torch import nn
from torch.nn import functional as F

from mask2former.config.configurable import configurable
from mask2former.layers.batch_norm import get_norm
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.layers.wrappers import Conv2d
from mask2former.modeling.registry import PIXEL_DECODER_REGISTRY, get_from_registry

# The transformer decoder always reads three scales of the pixel decoder's output.
NUM_MULTI_SCALE_FEATURES = 3


def build_pixel_decoder(cfg, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Build ``cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME`` from the backbone's output shapes.

    The result has ``forward_features(features) -> (mask_features, transformer_encoder_features,
    multi_scale_features)``.
    """
    name = cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME
    decoder_cls = get_from_registry(
        PIXEL_DECODER_REGISTRY, name, "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME"
    )
    model = decoder_cls(cfg, input_shape)
    if not callable(getattr(model, "forward_features", None)):
        raise TypeError(
            f"MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME={name!r} has no forward_features method; "
            "a pixel decoder must return (mask_features, encoder_features, multi_scale_features)"
        )
    return model


@PIXEL_DECODER_REGISTRY.register()
class BasePixelDecoder(nn.Module):
    """Top-down FPN over all input features with a 3x3 conv producing the mask features.

    Submodules: ``layer_{n}`` (3x3 output conv of the coarsest level), ``adapter_{k}`` /
    ``layer_{k}`` (1x1 lateral and 3x3 output convs of the finer levels), ``mask_features``.
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        conv_dim: int,
        mask_dim: int,
        norm: str | Callable[[int], nn.Module] | None = None,
    ) -> None:
        """
        Args:
            input_shape: channels and stride of every input feature (e.g. res2..res5).
            conv_dim: channels of the FPN convs.
            mask_dim: channels of the output mask features.
            norm: norm of the FPN convs ("GN", "", ...).
        """
        super().__init__()
        by_stride = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in by_stride]  # fine to coarse, res2..res5
        feature_channels = [shape.channels for _, shape in by_stride]

        use_bias = norm == ""
        lateral_convs: list[Conv2d | None] = []
        output_convs: list[Conv2d] = []
        for idx, in_channels in enumerate(feature_channels):
            is_coarsest = idx == len(self.in_features) - 1
            if is_coarsest:
                # the coarsest level has no lateral conv: its output conv reads the feature
                lateral_conv = None
            else:
                lateral_conv = Conv2d(
                    in_channels,
                    conv_dim,
                    kernel_size=1,
                    bias=use_bias,
                    norm=get_norm(norm, conv_dim),
                )
                c2_xavier_fill(lateral_conv)
                self.add_module(f"adapter_{idx + 1}", lateral_conv)
            output_conv = Conv2d(
                in_channels if is_coarsest else conv_dim,
                conv_dim,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, conv_dim),
                activation=F.relu,
            )
            c2_xavier_fill(output_conv)
            self.add_module(f"layer_{idx + 1}", output_conv)
            lateral_convs.append(lateral_conv)
            output_convs.append(output_conv)
        # plain lists (already registered above), ordered coarse to fine for the top-down pass
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]

        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=3, stride=1, padding=1)
        c2_xavier_fill(self.mask_features)
        self.maskformer_num_feature_levels = NUM_MULTI_SCALE_FEATURES

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]) -> dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
            "norm": head.NORM,
        }

    def forward_features(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, None, list[torch.Tensor]]:
        """Decode backbone features.

        Args:
            features: name -> (B, C_name, H_name, W_name), e.g. res2..res5.

        Returns:
            mask_features (B, mask_dim, H_finest, W_finest); ``None`` (no encoder); and the
            first three decoded levels, coarse to fine, each (B, conv_dim, H_l, W_l).
        """
        multi_scale_features = []
        y = None
        for name, lateral_conv, output_conv in zip(
            self.in_features[::-1], self.lateral_convs, self.output_convs
        ):
            x = features[name]
            if lateral_conv is None:
                y = output_conv(x)
            else:
                lateral = lateral_conv(x)
                y = output_conv(lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest"))
            if len(multi_scale_features) < self.maskformer_num_feature_levels:
                multi_scale_features.append(y)
        return self.mask_features(y), None, multi_scale_features

    def forward(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, None, list[torch.Tensor]]:
        """Same as :meth:`forward_features`."""
        return self.forward_features(features)
