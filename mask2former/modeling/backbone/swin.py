"""Swin Transformer backbone (Liu et al., arXiv 2103.14030) as used by Mask2Former.

Module layout, parameter and buffer names, padding and the shifted-window attention mask
follow the original Mask2Former ``D2SwinTransformer`` so its checkpoints load unchanged:
``patch_embed.proj.weight``, ``layers.0.blocks.0.attn.relative_position_bias_table``,
``layers.0.blocks.0.attn.relative_position_index`` (a persistent buffer),
``layers.0.downsample.reduction.weight``, ``norm0.weight`` ... ``norm3.bias``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mask2former.config.configurable import configurable
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.backbone.swin_blocks import BasicLayer, PatchEmbed
from mask2former.modeling.registry import BACKBONE_REGISTRY


@BACKBONE_REGISTRY.register()
class D2SwinTransformer(Backbone):
    """Swin Transformer returning ``res2``.. ``res5`` (strides 4..32), each LayerNorm-ed.

    A LayerNorm ``norm{i}`` exists for every stage, whatever ``out_features`` asks for,
    as in the original (its checkpoints hold all four). ``MODEL.BACKBONE.FREEZE_AT`` is not
    read, as in the original.

    Args:
        pretrain_img_size: image size of the pretraining (sizes the absolute position
            embedding, which exists only when ``ape``).
        patch_size: side of the non-overlapping patches (the stride of ``res2``).
        in_chans: input channels.
        embed_dim: channels of stage 1; stage i has ``embed_dim * 2**i``.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window side (7 for 224 pretraining, 12 for 384).
        mlp_ratio: MLP hidden width / channels.
        qkv_bias: bias on the qkv projections.
        qk_scale: query scale override (None: ``head_dim ** -0.5``).
        drop_rate: dropout after the patch embedding, in MLPs and attention projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks.
        ape: add an absolute position embedding (bicubically resized to the input).
        patch_norm: LayerNorm after the patch embedding.
        out_features: names among ``res2``.. returned by ``forward``.
        use_checkpoint: activation checkpointing of every block (saves memory in training).
    """

    @configurable
    def __init__(
        self,
        *,
        pretrain_img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        ape: bool = False,
        patch_norm: bool = True,
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(
                f"Swin depths={list(depths)} and num_heads={list(num_heads)} differ in length"
            )
        self.num_layers = len(depths)
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]
        for channels, heads in zip(self.num_features, num_heads):
            if channels % heads != 0:
                raise ValueError(f"Swin stage width {channels} is not divisible by {heads} heads")
        names = [f"res{i + 2}" for i in range(self.num_layers)]
        if not out_features or any(name not in names for name in out_features):
            raise ValueError(f"Swin out_features={list(out_features)}: expected names in {names}")
        self.in_chans = in_chans
        self.ape = ape

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, norm=patch_norm)
        if ape:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid, grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(p=drop_rate)

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(
                BasicLayer(
                    self.num_features[i],
                    depth,
                    heads,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[start : start + depth],
                    downsample=i < self.num_layers - 1,
                    use_checkpoint=use_checkpoint,
                )
            )
        for i, channels in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(channels))

        self._out_features = list(out_features)
        self._out_feature_strides = {name: patch_size * 2**i for i, name in enumerate(names)}
        self._out_feature_channels = dict(zip(names, self.num_features))

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec | None = None) -> dict:
        swin = cfg.MODEL.SWIN
        return {
            "pretrain_img_size": swin.PRETRAIN_IMG_SIZE,
            "patch_size": swin.PATCH_SIZE,
            "in_chans": input_shape.channels if input_shape and input_shape.channels else 3,
            "embed_dim": swin.EMBED_DIM,
            "depths": list(swin.DEPTHS),
            "num_heads": list(swin.NUM_HEADS),
            "window_size": swin.WINDOW_SIZE,
            "mlp_ratio": swin.MLP_RATIO,
            "qkv_bias": swin.QKV_BIAS,
            "qk_scale": swin.QK_SCALE,
            "drop_rate": swin.DROP_RATE,
            "attn_drop_rate": swin.ATTN_DROP_RATE,
            "drop_path_rate": swin.DROP_PATH_RATE,
            "ape": swin.APE,
            "patch_norm": swin.PATCH_NORM,
            "out_features": list(swin.OUT_FEATURES),
            "use_checkpoint": swin.USE_CHECKPOINT,
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x (N, C_in, H, W). Returns: ``res{i+2}`` -> (N, C_i, ceil(H/s_i), ceil(W/s_i))."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"D2SwinTransformer expects an input of shape (N, {self.in_chans}, H, W), "
                f"got {tuple(x.shape)}"
            )
        x = self.patch_embed(x)
        height, width = x.shape[-2:]
        if self.ape:
            x = x + F.interpolate(self.absolute_pos_embed, size=(height, width), mode="bicubic")
        x = self.pos_drop(x.flatten(2).transpose(1, 2))  # B, H*W, C

        outputs = {}
        last_stage = max(int(name[3:]) - 2 for name in self._out_features)
        for i in range(last_stage + 1):
            out, x, next_height, next_width = self.layers[i](x, height, width)
            name = f"res{i + 2}"
            if name in self._out_features:
                out = getattr(self, f"norm{i}")(out)
                outputs[name] = (
                    out.view(-1, height, width, self.num_features[i])
                    .permute(0, 3, 1, 2)
                    .contiguous()
                )
            height, width = next_height, next_width
        return outputs

    @property
    def size_divisibility(self) -> int:
        return 32
