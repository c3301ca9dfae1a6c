"""Attention, FFN and MLP blocks of the masked-attention transformer decoder.

Tensors are sequence-first, (L, B, C), as ``nn.MultiheadAttention``'s default layout and the
original implementation. ``normalize_before`` selects pre-norm; Mask2Former uses post-norm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _xavier_init_matrices(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


def _with_pos(tensor: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return tensor if pos is None else tensor + pos


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # (L, B, C) -> (B, heads, L, C / heads), a view
    length, batch, channels = x.shape
    return x.view(length, batch, heads, channels // heads).permute(1, 2, 0, 3)


def sdpa_multihead_attention(
    attn: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    blocked: torch.Tensor | None = None,
) -> torch.Tensor:
    """``attn(query, key, value, attn_mask=blocked)[0]`` through ``scaled_dot_product_attention``.

    Uses ``attn``'s own parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) and no
    dropout, so it stands for an eval-mode ``nn.MultiheadAttention`` with equal q/k/v widths.
    The boolean mask is read per head without materialising a float copy of it.

    Args:
        attn: the (sequence-first) attention module.
        query: (Lq, B, C).
        key, value: (Lk, B, C).
        blocked: (B * heads, Lq, Lk) bool, True where a query may NOT attend, or None.

    Returns:
        (Lq, B, C).
    """
    heads = attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = (None,) * 3 if attn.in_proj_bias is None else attn.in_proj_bias.chunk(3)
    q = _split_heads(F.linear(query, w_q, b_q), heads)
    k = _split_heads(F.linear(key, w_k, b_k), heads)
    v = _split_heads(F.linear(value, w_v, b_v), heads)
    allowed = None
    if blocked is not None:
        blocked = blocked.view(q.shape[0], heads, q.shape[2], k.shape[2])
        if blocked.stride(1) == 0:
            # one mask shared by every head (compute_attention_mask's expanded view): pass it
            # once and let it broadcast
            blocked = blocked[:, :1]
        allowed = ~blocked
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return attn.out_proj(out.permute(2, 0, 1, 3).flatten(2))


def _attend(
    attn: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
) -> torch.Tensor:
    float_mask = attn_mask is not None and attn_mask.dtype != torch.bool
    if attn.training or key_padding_mask is not None or float_mask:
        # Training keeps nn.MultiheadAttention's own path, so its numerics are the original's.
        return attn(
            query, key, value=value, attn_mask=attn_mask, key_padding_mask=key_padding_mask
        )[0]
    return sdpa_multihead_attention(attn, query, key, value, attn_mask)


class SelfAttentionLayer(nn.Module):
    """Query self-attention with a residual connection and LayerNorm (``self_attn``, ``norm``)."""

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(
        self,
        tgt: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: tgt, query_pos (Q, B, C). Returns: (Q, B, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        q = k = _with_pos(x, query_pos)
        attended = _attend(self.self_attn, q, k, x, tgt_mask, tgt_key_padding_mask)
        tgt = tgt + self.dropout(attended)
        return tgt if self.normalize_before else self.norm(tgt)


class CrossAttentionLayer(nn.Module):
    """Queries attend to image features (``multihead_attn``, ``norm``).

    ``memory_mask`` is boolean, True where a query may NOT attend.
    """

    def __init__(
        self, d_model: int, nhead: int, dropout: float = 0.0, normalize_before: bool = False
    ) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: tgt, query_pos (Q, B, C); memory, pos (HW, B, C); memory_mask
        (B * heads, Q, HW) bool. Returns: (Q, B, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        attended = _attend(
            self.multihead_attn,
            _with_pos(x, query_pos),
            _with_pos(memory, pos),
            memory,
            memory_mask,
            memory_key_padding_mask,
        )
        tgt = tgt + self.dropout(attended)
        return tgt if self.normalize_before else self.norm(tgt)


class FFNLayer(nn.Module):
    """Two-layer ReLU feed-forward block (``linear1``, ``linear2``, ``norm``)."""

    def __init__(
        self,
        d_model: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.0,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before
        _xavier_init_matrices(self)

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        """Args: tgt (Q, B, C). Returns: (Q, B, C)."""
        x = self.norm(tgt) if self.normalize_before else tgt
        tgt = tgt + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x), inplace=True))))
        return tgt if self.normalize_before else self.norm(tgt)


class MLP(nn.Module):
    """``num_layers`` linear layers (``layers.{i}``) with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims_in, dims_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (..., input_dim). Returns: (..., output_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = F.relu(x, inplace=True)
        return x
