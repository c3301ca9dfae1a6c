"""Mask2Former's pixel decoder: a deformable-attention encoder over res3-res5 plus an FPN path.

Submodule names follow the original so checkpoints load unchanged:
``input_proj.{i}.{0,1}``, ``transformer.level_embed``, ``transformer.encoder.layers.{j}...``,
``mask_features``, ``adapter_{k}``, ``layer_{k}``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import torch
from fvcore.nn.weight_init import c2_xavier_fill
from torch import nn
from torch.nn import functional as F

from mask2former.config.configurable import configurable
from mask2former.layers.batch_norm import get_norm
from mask2former.layers.inference_ops import fused_linear, upsample_bilinear_2x
from mask2former.layers.ms_deform_attn_module import MSDeformAttn
from mask2former.layers.position_encoding import PositionEmbeddingSine
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.layers.wrappers import Conv2d, flatten_spatial
from mask2former.modeling.pixel_decoder.fpn import NUM_MULTI_SCALE_FEATURES
from mask2former.modeling.registry import PIXEL_DECODER_REGISTRY


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: deformable self-attention, then a ReLU FFN.

    Args:
        d_model: hidden dimension.
        d_ffn: FFN hidden dimension.
        dropout: dropout after attention and inside the FFN.
        n_levels: number of feature levels.
        n_heads: attention heads.
        n_points: sampling points per head and level.
    """

    def __init__(
        self,
        d_model: int = 256,
        d_ffn: int = 1024,
        dropout: float = 0.1,
        n_levels: int = 4,
        n_heads: int = 8,
        n_points: int = 4,
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)

        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """Args: src, pos (N, S, C); reference_points (N, S, L, 2). Returns: (N, S, C)."""
        attended = self.self_attn(
            src + pos, reference_points, src, spatial_shapes, level_start_index
        )
        src = self.norm1(src + self.dropout1(attended))
        if self.training:
            hidden = self.linear2(self.dropout2(F.relu(self.linear1(src), inplace=True)))
            return self.norm2(src + self.dropout3(hidden))
        # dropout is the identity: ReLU and the residual add fuse into the linear layers
        hidden = fused_linear(self.linear1, src, relu=True)
        return self.norm2(fused_linear(self.linear2, hidden, residual=src))


class MSDeformAttnTransformerEncoder(nn.Module):
    """A stack of :class:`MSDeformAttnTransformerEncoderLayer` (``layers.{j}``)."""

    def __init__(self, num_layers: int, **layer_kwargs) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            MSDeformAttnTransformerEncoderLayer(**layer_kwargs) for _ in range(num_layers)
        )

    @staticmethod
    def get_reference_points(
        spatial_shapes: torch.Tensor | Sequence[tuple[int, int]],
        batch: int,
        device: torch.device | str,
    ) -> torch.Tensor:
        """Pixel centres of every level, normalised to [0, 1] (no padding: valid ratios are 1).

        Args:
            spatial_shapes: (L, 2) (H_l, W_l), a tensor or Python sizes (torch.export traces
                sizes taken from tensor shapes, not values read from tensor data).

        Returns:
            (batch, S, L, 2) (x, y), the same point repeated for each of the L levels.
        """
        if isinstance(spatial_shapes, torch.Tensor):
            spatial_shapes = spatial_shapes.tolist()
        points = []
        for height, width in spatial_shapes:
            # arange + 0.5 equals linspace(0.5, size - 0.5, size) exactly (a step of 1.0), and its
            # size stays symbolic under torch.export (linspace's end would specialise it)
            ref_y, ref_x = torch.meshgrid(
                torch.arange(height, dtype=torch.float32, device=device) + 0.5,
                torch.arange(width, dtype=torch.float32, device=device) + 0.5,
                indexing="ij",
            )
            points.append(torch.stack((ref_x.reshape(-1) / width, ref_y.reshape(-1) / height), -1))
        reference_points = torch.cat(points, 0)
        return reference_points[None, :, None].expand(batch, -1, len(spatial_shapes), -1)

    def forward(
        self,
        src: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        pos: torch.Tensor,
        level_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> torch.Tensor:
        """Args: src, pos (N, S, C); spatial_shapes (L, 2); level_sizes: the same (H_l, W_l) as
        Python sizes when known. Returns: (N, S, C)."""
        reference_points = self.get_reference_points(
            spatial_shapes if level_sizes is None else level_sizes, src.shape[0], src.device
        )
        output = src
        for layer in self.layers:
            output = layer(output, pos, reference_points, spatial_shapes, level_start_index)
        return output


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Flattens the levels, adds level embeddings to the positions and runs the encoder.

    Args:
        d_model: hidden dimension.
        nhead: attention heads.
        num_encoder_layers: encoder depth.
        dim_feedforward: FFN hidden dimension.
        dropout: dropout probability.
        num_feature_levels: number of input levels.
        enc_n_points: sampling points per head and level.
    """

    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.1,
        num_feature_levels: int = 4,
        enc_n_points: int = 4,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.nhead = nhead
        self.encoder = MSDeformAttnTransformerEncoder(
            num_encoder_layers,
            d_model=d_model,
            d_ffn=dim_feedforward,
            dropout=dropout,
            n_levels=num_feature_levels,
            n_heads=nhead,
            n_points=enc_n_points,
        )
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(
        self, srcs: list[torch.Tensor], pos_embeds: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode all levels jointly.

        Args:
            srcs: per level (N, C, H_l, W_l).
            pos_embeds: per level (N, C, H_l, W_l).

        Returns:
            memory (N, S, C), spatial_shapes (L, 2) int64, level_start_index (L,) int64.
        """
        src_flatten = torch.cat([flatten_spatial(src) for src in srcs], 1)
        pos_flatten = torch.cat(
            [
                flatten_spatial(pos) + self.level_embed[level].view(1, 1, -1)
                for level, pos in enumerate(pos_embeds)
            ],
            1,
        )
        level_sizes = [tuple(src.shape[-2:]) for src in srcs]
        # Stacked from scalars, not torch.as_tensor(level_sizes): torch.export then keeps the
        # sizes symbolic (as_tensor would specialise the exported graph to one input size).
        spatial_shapes = torch.stack(
            [
                torch.stack(
                    [
                        torch.full((), size, dtype=torch.long, device=src_flatten.device)
                        for size in sizes
                    ]
                )
                for sizes in level_sizes
            ]
        )
        level_start_index = torch.cat(
            (spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1])
        )
        memory = self.encoder(
            src_flatten, spatial_shapes, level_start_index, pos_flatten, level_sizes
        )
        return memory, spatial_shapes, level_start_index


def _autocast_off(device_type: str, training: bool) -> contextlib.AbstractContextManager:
    # In training the deformable encoder runs in float32 even under AMP, as in the original.
    # Inference keeps the caller's autocast (TEST.AMP): there the deformable-attention op
    # alone runs in float32, by its autocast rule.
    if training and device_type in ("cuda", "cpu"):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


@PIXEL_DECODER_REGISTRY.register()
class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable encoder over the coarse features, then FPN steps down to ``common_stride``."""

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        transformer_dropout: float,
        transformer_nheads: int,
        transformer_dim_feedforward: int,
        transformer_enc_layers: int,
        conv_dim: int,
        mask_dim: int,
        norm: str | Callable[[int], nn.Module] | None = None,
        transformer_in_features: list[str],
        common_stride: int,
    ) -> None:
        """
        Args:
            input_shape: channels and stride of every input feature (e.g. res2..res5).
            transformer_dropout: dropout in the encoder.
            transformer_nheads: attention heads in the encoder.
            transformer_dim_feedforward: encoder FFN hidden dimension.
            transformer_enc_layers: encoder depth.
            conv_dim: channels of the encoder and of the FPN convs.
            mask_dim: channels of the output mask features.
            norm: norm of the FPN convs ("GN", "", ...).
            transformer_in_features: features fed to the encoder (e.g. res3..res5).
            common_stride: stride of the mask features (4).
        """
        super().__init__()
        missing = [name for name in transformer_in_features if name not in input_shape]
        if missing:
            raise ValueError(
                f"transformer_in_features {missing} are not in input_shape {sorted(input_shape)}"
            )
        by_stride = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in by_stride]  # fine to coarse, res2..res5
        self.feature_strides = [shape.stride for _, shape in by_stride]
        self.feature_channels = [shape.channels for _, shape in by_stride]

        transformer_shapes = [item for item in by_stride if item[0] in transformer_in_features]
        self.transformer_in_features = [name for name, _ in transformer_shapes]
        self.transformer_feature_strides = [shape.stride for _, shape in transformer_shapes]
        self.transformer_num_feature_levels = len(self.transformer_in_features)

        # projections in encoder level order: coarse to fine (res5 first)
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(shape.channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim)
            )
            for _, shape in transformer_shapes[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

        self.transformer = MSDeformAttnTransformerEncoderOnly(
            d_model=conv_dim,
            dropout=transformer_dropout,
            nhead=transformer_nheads,
            dim_feedforward=transformer_dim_feedforward,
            num_encoder_layers=transformer_enc_layers,
            num_feature_levels=self.transformer_num_feature_levels,
        )
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)

        self.mask_dim = mask_dim
        self.mask_features = Conv2d(conv_dim, mask_dim, kernel_size=1, stride=1, padding=0)
        c2_xavier_fill(self.mask_features)

        self.maskformer_num_feature_levels = NUM_MULTI_SCALE_FEATURES
        self.common_stride = common_stride
        # one FPN step per factor of 2 between the finest encoder level and common_stride
        self.num_fpn_levels = int(
            math.log2(min(self.transformer_feature_strides)) - math.log2(common_stride)
        )
        use_bias = norm == ""
        lateral_convs, output_convs = [], []
        for idx, in_channels in enumerate(self.feature_channels[: self.num_fpn_levels]):
            lateral_conv = Conv2d(
                in_channels, conv_dim, kernel_size=1, bias=use_bias, norm=get_norm(norm, conv_dim)
            )
            output_conv = Conv2d(
                conv_dim,
                conv_dim,
                kernel_size=3,
                stride=1,
                padding=1,
                bias=use_bias,
                norm=get_norm(norm, conv_dim),
                activation=F.relu,
            )
            c2_xavier_fill(lateral_conv)
            c2_xavier_fill(output_conv)
            self.add_module(f"adapter_{idx + 1}", lateral_conv)
            self.add_module(f"layer_{idx + 1}", output_conv)
            lateral_convs.append(lateral_conv)
            output_convs.append(output_conv)
        # plain lists (already registered above), ordered coarse to fine for the top-down pass
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]) -> dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "conv_dim": head.CONVS_DIM,
            "mask_dim": head.MASK_DIM,
            "norm": head.NORM,
            "transformer_dropout": cfg.MODEL.MASK_FORMER.DROPOUT,
            "transformer_nheads": cfg.MODEL.MASK_FORMER.NHEADS,
            # The original hard-codes 1024 here (not MASK_FORMER.DIM_FEEDFORWARD); our extra
            # key defaults to that value.
            "transformer_dim_feedforward": head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD,
            "transformer_enc_layers": head.TRANSFORMER_ENC_LAYERS,
            "transformer_in_features": head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES,
            "common_stride": head.COMMON_STRIDE,
        }

    def forward_features(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Decode backbone features.

        Args:
            features: name -> (B, C_name, H_name, W_name), e.g. res2..res5.

        Returns:
            mask_features (B, mask_dim, H/common_stride, W/common_stride); the encoder output
            of the coarsest level (B, conv_dim, H/32, W/32); and the first three decoded
            levels, coarse to fine, each (B, conv_dim, H_l, W_l) (float32).
        """
        device_type = features[self.in_features[0]].device.type
        # float32, or the parameters' dtype after ``model.to(dtype)``
        dtype = self.transformer.level_embed.dtype
        with _autocast_off(device_type, self.training):
            srcs, pos = [], []
            for proj, name in zip(self.input_proj, self.transformer_in_features[::-1]):
                x = features[name].to(dtype)
                srcs.append(proj(x))
                pos.append(self.pe_layer(x).to(dtype))
            memory, _, _ = self.transformer(srcs, pos)

            batch = memory.shape[0]
            # sizes from the shapes, not the spatial_shapes tensor's data, so torch.export traces
            shapes = [tuple(src.shape[-2:]) for src in srcs]
            outs = [
                level.transpose(1, 2).view(batch, -1, height, width)
                for level, (height, width) in zip(
                    memory.split([h * w for h, w in shapes], dim=1), shapes
                )
            ]
            # top-down FPN steps on the finer backbone features
            for idx, name in enumerate(self.in_features[: self.num_fpn_levels][::-1]):
                lateral = self.lateral_convs[idx](features[name].to(dtype))
                # bilinear, as the original code does (its comment says nearest)
                upsampled = upsample_bilinear_2x(outs[-1], lateral.shape[-2:])
                outs.append(self.output_convs[idx](lateral + upsampled))

            multi_scale_features = outs[: self.maskformer_num_feature_levels]
            return self.mask_features(outs[-1]), outs[0], multi_scale_features

    def forward(
        self, features: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Same as :meth:`forward_features`."""
        return self.forward_features(features)
