"""Swin window attention: the eval path (scaled_dot_product_attention with the relative position
bias and shift mask as one additive mask) against the training path (explicit softmax)."""

from __future__ import annotations

import pytest
import torch

from mask2former.modeling.backbone.swin import D2SwinTransformer
from mask2former.modeling.backbone.swin_blocks import (
    WindowAttention,
    shifted_window_attention_mask,
)


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("batch", [1, 2])
def test_window_attention_eval_matches_training_path(shifted, batch):
    torch.manual_seed(0)
    attn = WindowAttention(dim=24, window_size=4, num_heads=3)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    mask = shifted_window_attention_mask(8, 12, 4, 2) if shifted else None
    x = torch.randn(batch * 6, 16, 24)  # 6 windows of 4 x 4 per image
    trained = attn.train()(x, mask)
    with torch.no_grad():
        evaluated = attn.eval()(x, mask)
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-5, atol=1e-5)


def test_swin_backbone_eval_matches_training_path():
    torch.manual_seed(0)
    model = D2SwinTransformer(
        embed_dim=24, depths=[2, 2], num_heads=[3, 6], window_size=4, drop_path_rate=0.0,
        out_features=["res2", "res3"],
    )  # fmt: skip
    for module in model.modules():
        if isinstance(module, WindowAttention):
            torch.nn.init.normal_(module.relative_position_bias_table)
    images = torch.randn(2, 3, 60, 44)
    trained = model.train()(images)
    with torch.no_grad():
        evaluated = model.eval()(images)
    for name, tensor in trained.items():
        torch.testing.assert_close(evaluated[name], tensor.detach(), rtol=1e-5, atol=1e-5)
