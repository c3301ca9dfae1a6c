"""The decoder's eval-time attention (scaled_dot_product_attention) vs nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch

from mask2former.modeling.transformer_decoder.layers import (
    CrossAttentionLayer,
    SelfAttentionLayer,
    sdpa_multihead_attention,
)


def _blocked(batch: int, heads: int, queries: int, keys: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    blocked = torch.rand(batch, queries, keys, generator=generator) < 0.7
    blocked[:, 0] = True  # a fully blocked query, cleared as compute_attention_mask does
    blocked &= ~blocked.all(-1, keepdim=True)
    return blocked.repeat_interleave(heads, dim=0)


@pytest.mark.parametrize("with_mask", [False, True])
def test_sdpa_matches_multihead_attention(with_mask):
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(32, 4).eval()
    torch.nn.init.normal_(attn.in_proj_bias)
    query, key, value = torch.randn(7, 2, 32), torch.randn(50, 2, 32), torch.randn(50, 2, 32)
    blocked = _blocked(2, 4, 7, 50) if with_mask else None
    expected = attn(query, key, value, attn_mask=blocked)[0]
    got = sdpa_multihead_attention(attn, query, key, value, blocked)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_cross_attention_layer_eval_matches_and_training_is_the_module_path():
    torch.manual_seed(0)
    layer = CrossAttentionLayer(32, 4)
    tgt, query_pos = torch.randn(6, 2, 32), torch.randn(6, 2, 32)
    memory, pos = torch.randn(40, 2, 32), torch.randn(40, 2, 32)
    blocked = _blocked(2, 4, 6, 40, seed=1)
    layer.train()
    trained = layer(tgt, memory, memory_mask=blocked, pos=pos, query_pos=query_pos)
    reference = layer.multihead_attn(tgt + query_pos, memory + pos, memory, attn_mask=blocked)[0]
    assert torch.equal(trained, layer.norm(tgt + reference))
    layer.eval()
    with torch.no_grad():
        evaluated = layer(tgt, memory, memory_mask=blocked, pos=pos, query_pos=query_pos)
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-5, atol=1e-5)


def test_self_attention_layer_eval_matches_training_path():
    torch.manual_seed(0)
    layer = SelfAttentionLayer(32, 4)
    tgt, query_pos = torch.randn(6, 3, 32), torch.randn(6, 3, 32)
    trained = layer.train()(tgt, query_pos=query_pos)
    with torch.no_grad():
        evaluated = layer.eval()(tgt, query_pos=query_pos)
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-5, atol=1e-5)
