"""Swin Transformer building blocks: windowed attention with relative position bias, shifted
windows, patch embedding and merging. ``D2SwinTransformer`` (swin.py) stacks them.

Parameter and buffer names follow the original Mask2Former implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils import checkpoint

from mask2former.layers.drop_path import DropPath


def relative_position_index(window_size: int) -> torch.Tensor:
    """Swin's (ws*ws, ws*ws) int64 index into the (2 ws - 1)^2 relative position bias table."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # 2, ws*ws
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    relative += window_size - 1  # offsets start at 0
    relative[:, :, 0] *= 2 * window_size - 1
    return relative.sum(-1)


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
        self.register_buffer("relative_position_index", relative_position_index(window_size))

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
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(num_tokens, num_tokens, -1).permute(2, 0, 1)  # heads, N, N
        if not self.training:
            # One fused kernel; the bias and the shift mask enter as one additive float mask.
            additive = bias.unsqueeze(0)
            if mask is not None:
                num_windows = mask.shape[0]
                additive = (mask.unsqueeze(1) + additive).unsqueeze(0)  # 1, nW, heads, N, N
                additive = additive.expand(batch_windows // num_windows, -1, -1, -1, -1)
                additive = additive.reshape(batch_windows, self.num_heads, num_tokens, num_tokens)
            x = F.scaled_dot_product_attention(
                query, key, value, attn_mask=additive.to(query.dtype), scale=self.scale
            )
            x = x.transpose(1, 2).reshape(batch_windows, num_tokens, channels)
            return self.proj_drop(self.proj(x))

        attn = (query * self.scale) @ key.transpose(-2, -1)
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
