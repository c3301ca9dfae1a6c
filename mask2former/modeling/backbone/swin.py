"""Swin Transformer backbone (Liu et al., arXiv 2103.14030) as used by Mask2Former.

Module layout, parameter and buffer names, padding and the shifted-window attention mask
follow the original Mask2Former ``D2SwinTransformer`` so its checkpoints load unchanged:
``patch_embed.proj.weight``, ``layers.0.blocks.0.attn.relative_position_bias_table``,
``layers.0.blocks.0.attn.relative_position_index`` (a persistent buffer),
``layers.0.downsample.reduction.weight``, ``norm0.weight`` ... ``norm3.bias``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils import checkpoint

from mask2former.config.configurable import configurable
from mask2former.layers.drop_path import DropPath
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.registry import BACKBONE_REGISTRY


class Mlp(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (..., C). Returns: (..., C)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Split (B, H, W, C) into windows (B * H/ws * W/ws, ws, ws, C); H, W multiples of ws."""
    batch, height, width, channels = x.shape
    x = x.view(
        batch, height // window_size, window_size, width // window_size, window_size, channels
    )
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, channels)


def window_reverse(
    windows: torch.Tensor, window_size: int, height: int, width: int
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    batch = windows.shape[0] // ((height // window_size) * (width // window_size))
    x = windows.view(
        batch, height // window_size, width // window_size, window_size, window_size, -1
    )
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


def shifted_window_attention_mask(
    height: int,
    width: int,
    window_size: int,
    shift_size: int,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive mask that keeps shifted windows from attending across the roll seam.

    The padded map (H, W rounded up to multiples of ``window_size``) is cut into 3 x 3
    regions by the slices [0, -ws), [-ws, -shift), [-shift, end) on each axis; tokens of one
    window attend only to tokens of the same region (0), others get -100.

    Returns:
        (num_windows, ws * ws, ws * ws) tensor of 0 and -100.
    """
    padded_height = math.ceil(height / window_size) * window_size
    padded_width = math.ceil(width / window_size) * window_size
    region = torch.zeros((1, padded_height, padded_width, 1), device=device, dtype=dtype)
    slices = (
        slice(0, -window_size),
        slice(-window_size, -shift_size),
        slice(-shift_size, None),
    )
    label = 0
    for h_slice in slices:
        for w_slice in slices:
            region[:, h_slice, w_slice, :] = label
            label += 1
    region_windows = window_partition(region, window_size).view(-1, window_size * window_size)
    diff = region_windows.unsqueeze(1) - region_windows.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a relative position bias table.

    Args:
        dim: token channels.
        window_size: side of the square window.
        num_heads: attention heads; ``dim`` must be divisible by it.
        qkv_bias: learnable bias on the qkv projection.
        qk_scale: overrides the ``head_dim ** -0.5`` query scale when set.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5

        # One bias per head for each of the (2 ws - 1)^2 relative offsets.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
        ).flatten(1)  # 2, ws*ws
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        relative += window_size - 1  # offsets start at 0
        relative[:, :, 0] *= 2 * window_size - 1
        self.register_buffer("relative_position_index", relative.sum(-1))  # ws*ws, ws*ws

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            x: (num_windows * B, N, C) tokens, N = ws * ws.
            mask: (num_windows, N, N) additive mask (0 / -100) or None.

        Returns:
            (num_windows * B, N, C).
        """
        batch_windows, num_tokens, channels = x.shape
        qkv = self.qkv(x).reshape(
            batch_windows, num_tokens, 3, self.num_heads, channels // self.num_heads
        )
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B_, heads, N, head_dim)
        attn = (query * self.scale) @ key.transpose(-2, -1)

        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(num_tokens, num_tokens, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            attn = attn.view(
                batch_windows // num_windows, num_windows, self.num_heads, num_tokens, num_tokens
            ) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, num_tokens, num_tokens)
        attn = self.attn_drop(self.softmax(attn))

        x = (attn @ value).transpose(1, 2).reshape(batch_windows, num_tokens, channels)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each with a residual and drop path."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size={shift_size}: expected 0 <= shift < {window_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop=attn_drop, proj_drop=drop
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(
        self, x: torch.Tensor, height: int, width: int, attn_mask: torch.Tensor
    ) -> torch.Tensor:
        """Args:
            x: (B, H * W, C) tokens.
            attn_mask: (num_windows, ws*ws, ws*ws), used when ``shift_size > 0``.

        Returns:
            (B, H * W, C).
        """
        batch, length, channels = x.shape
        if length != height * width:
            raise ValueError(f"Swin block got {length} tokens for a {height}x{width} map")
        shortcut = x
        x = self.norm1(x).view(batch, height, width, channels)

        # Pad right/bottom to whole windows.
        ws = self.window_size
        pad_r = (ws - width % ws) % ws
        pad_b = (ws - height % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        _, padded_height, padded_width, _ = x.shape

        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = window_partition(x, ws).view(-1, ws * ws, channels)
        windows = self.attn(windows, mask=attn_mask if self.shift_size > 0 else None)
        x = window_reverse(windows.view(-1, ws, ws, channels), ws, padded_height, padded_width)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        if pad_r > 0 or pad_b > 0:
            x = x[:, :height, :width, :].contiguous()

        x = shortcut + self.drop_path(x.view(batch, height * width, channels))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C), LayerNorm, project to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Args: x (B, H * W, C). Returns: (B, ceil(H/2) * ceil(W/2), 2C)."""
        batch, _, channels = x.shape
        x = x.view(batch, height, width, channels)
        if height % 2 == 1 or width % 2 == 1:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]],
            dim=-1,
        ).view(batch, -1, 4 * channels)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One Swin stage: blocks alternating regular and shifted windows, then patch merging.

    Args:
        drop_path: one stochastic-depth rate per block.
        downsample: end the stage with :class:`PatchMerging`.
        use_checkpoint: recompute each block in backward (saves memory).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: Sequence[float] = (),
        downsample: bool = False,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim,
                num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(
        self, x: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Args: x (B, H * W, C).

        Returns:
            (stage output (B, H * W, C), next-stage input (B, H' * W', C'), H', W'), where
            H' = ceil(H / 2), C' = 2C after patch merging (the output itself otherwise).
        """
        attn_mask = shifted_window_attention_mask(
            height, width, self.window_size, self.shift_size, device=x.device, dtype=x.dtype
        )
        for block in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint.checkpoint(block, x, height, width, attn_mask, use_reentrant=False)
            else:
                x = block(x, height, width, attn_mask)
        if self.downsample is None:
            return x, x, height, width
        return x, self.downsample(x, height, width), (height + 1) // 2, (width + 1) // 2


class PatchEmbed(nn.Module):
    """Pad right/bottom to a patch multiple, patchify with a strided conv, optional norm."""

    def __init__(
        self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96, norm: bool = True
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, H, W). Returns: (B, embed_dim, ceil(H/p), ceil(W/p))."""
        height, width = x.shape[-2:]
        if width % self.patch_size != 0:
            x = F.pad(x, (0, self.patch_size - width % self.patch_size))
        if height % self.patch_size != 0:
            x = F.pad(x, (0, 0, 0, self.patch_size - height % self.patch_size))
        x = self.proj(x)
        if self.norm is not None:
            out_height, out_width = x.shape[-2:]
            x = self.norm(x.flatten(2).transpose(1, 2))
            x = x.transpose(1, 2).view(-1, self.embed_dim, out_height, out_width)
        return x


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
