"""Swin backbone: original parameter names and counts, relative positions, shifted-window
mask, padding, drop path, activation checkpointing."""

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.layers.drop_path import DropPath
from mask2former.modeling.backbone import D2SwinTransformer, build_backbone
from mask2former.modeling.backbone.swin_blocks import (
    SwinTransformerBlock,
    WindowAttention,
    shifted_window_attention_mask,
)

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), drop_path_rate=0.0)


def _swin_cfg(opts=()):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "D2SwinTransformer", *opts])
    return cfg


def test_swin_t_state_dict_names():
    with torch.device("meta"):
        model = build_backbone(_swin_cfg())
    keys = list(model.state_dict())
    # 12 blocks x 14 tensors + 3 patch mergings x 3 + patch embed 4 + norm0..3 x 2.
    assert len(keys) == 12 * 14 + 3 * 3 + 4 + 8
    assert keys[:4] == [
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "patch_embed.norm.weight",
        "patch_embed.norm.bias",
    ]
    expected = [
        "layers.0.blocks.0.norm1.weight",
        "layers.0.blocks.0.attn.relative_position_bias_table",
        "layers.0.blocks.0.attn.relative_position_index",
        "layers.0.blocks.0.attn.qkv.weight",
        "layers.0.blocks.0.attn.qkv.bias",
        "layers.0.blocks.0.attn.proj.weight",
        "layers.0.blocks.1.norm2.bias",
        "layers.0.blocks.1.mlp.fc1.weight",
        "layers.0.blocks.1.mlp.fc2.bias",
        "layers.0.downsample.reduction.weight",
        "layers.0.downsample.norm.weight",
        "layers.2.blocks.5.attn.relative_position_index",
        "layers.2.downsample.norm.bias",
        "layers.3.blocks.1.mlp.fc2.weight",
        "norm0.weight",
        "norm3.bias",
    ]
    assert set(expected) <= set(keys)
    absent = ["layers.3.downsample.reduction.weight", "layers.0.blocks.1.attn_mask", "norm.weight"]
    assert not set(absent) & set(keys)
    assert not any("absolute_pos_embed" in key or "reduction.bias" in key for key in keys)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["patch_embed.proj.weight"] == (96, 3, 4, 4)
    assert shapes["layers.0.blocks.0.attn.relative_position_bias_table"] == (169, 3)
    assert shapes["layers.0.blocks.0.attn.relative_position_index"] == (49, 49)
    assert shapes["layers.1.downsample.reduction.weight"] == (384, 768)
    assert shapes["norm3.weight"] == (768,)


@pytest.mark.parametrize(
    ("embed_dim", "depths", "window", "num_params"),
    [
        # The ImageNet classifiers' counts minus head and final norm, plus norm0..norm3.
        (96, [2, 2, 6, 2], 7, 27_520_698),  # Swin-T
        (96, [2, 2, 18, 2], 7, 48_838_602),  # Swin-S
        (128, [2, 2, 18, 2], 12, 86_880_376),  # Swin-B 384
        (192, [2, 2, 18, 2], 12, 195_201_204),  # Swin-L 384
    ],
)
def test_parameter_counts(embed_dim, depths, window, num_params):
    heads = [embed_dim // 32 * 2**i for i in range(4)]
    opts = ["MODEL.SWIN.EMBED_DIM", embed_dim, "MODEL.SWIN.DEPTHS", depths]
    opts += ["MODEL.SWIN.NUM_HEADS", heads, "MODEL.SWIN.WINDOW_SIZE", window]
    with torch.device("meta"):
        model = build_backbone(_swin_cfg(opts))
    assert sum(p.numel() for p in model.parameters()) == num_params


def test_from_config_equals_keywords():
    cfg = _swin_cfg(["MODEL.SWIN.EMBED_DIM", 16, "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4]])
    cfg.merge_from_list(["MODEL.SWIN.DEPTHS", [2, 2, 2, 2], "MODEL.SWIN.DROP_PATH_RATE", 0.0])
    from_cfg = D2SwinTransformer(cfg, None)
    from_kwargs = D2SwinTransformer(**TINY)
    assert {k: v.shape for k, v in from_cfg.state_dict().items()} == {
        k: v.shape for k, v in from_kwargs.state_dict().items()
    }
    assert from_cfg.size_divisibility == 32


def test_relative_position_index_window_2():
    attn = WindowAttention(dim=4, window_size=2, num_heads=1)
    # Tokens (0,0), (0,1), (1,0), (1,1); index = (dy + 1) * 3 + (dx + 1), d = token_i - token_j.
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(attn.relative_position_index, expected)
    assert "relative_position_index" in attn.state_dict()


def test_shifted_window_mask_regions():
    mask = shifted_window_attention_mask(4, 4, window_size=2, shift_size=1)
    assert mask.shape == (4, 4, 4)
    assert torch.equal(mask[0], torch.zeros(4, 4))  # top-left window: one region
    # Top-right window: columns 2 and 3 are different regions, rows 0-1 the same one.
    same_column = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]])
    assert torch.equal(mask[1], -100.0 * same_column)
    assert torch.equal(mask[3], -100.0 * (1 - torch.eye(4)))  # four regions
    # Padding: a 5x3 map is padded to 6x4 windows of 2 before the regions are cut.
    assert shifted_window_attention_mask(5, 3, 2, 1).shape == (6, 4, 4)


def test_shifted_block_keeps_wrapped_tokens_apart():
    torch.manual_seed(0)
    block = SwinTransformerBlock(dim=8, num_heads=2, window_size=4, shift_size=2).eval()
    size = 8
    mask = shifted_window_attention_mask(size, size, 4, 2)
    x = torch.randn(1, size * size, 8)
    moved = x.clone()
    moved[0, 0] += 5.0  # token (0, 0) is rolled into the window of token (7, 7)
    with torch.no_grad():
        out, out_moved = block(x, size, size, mask), block(moved, size, size, mask)
    changed = (out - out_moved).abs().amax(-1)[0].view(size, size)
    assert changed[7, 7] == 0  # same shifted window, different region: masked
    assert changed[1, 1] > 0  # same shifted window and region: attends
    unmasked = block(moved, size, size, torch.zeros_like(mask)) - block(x, size, size, mask)
    assert unmasked.abs().amax(-1)[0].view(size, size)[7, 7] > 0  # the mask is what separates


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (17, 9)])
def test_padding_and_output_shapes(size):
    torch.manual_seed(0)
    model = D2SwinTransformer(**TINY, window_size=7).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, *size))
    for name, spec in model.output_shape().items():
        expected = tuple(-(-s // spec.stride) for s in size)
        assert outputs[name].shape == (1, spec.channels, *expected)


def test_norm_layers_exist_for_every_stage():
    model = D2SwinTransformer(**TINY, out_features=["res5"])
    assert all(hasattr(model, f"norm{i}") for i in range(4))
    assert list(model(torch.randn(1, 3, 32, 32))) == ["res5"]


def test_init():
    torch.manual_seed(0)
    model = D2SwinTransformer(**TINY, window_size=12)
    table = model.layers[0].blocks[0].attn.relative_position_bias_table  # (23 * 23, 1)
    # As the original: a normal with std 0.02 (its +-2 truncation never bites at this std).
    assert table.mean().abs().item() < 0.005
    assert table.std().item() == pytest.approx(0.02, rel=0.25)
    # Normal, not uniform: 68 % lie within one std (a uniform of the same std gives 58 %).
    within_one_std = (table.abs() < 0.02).float().mean().item()
    assert 0.62 < within_one_std < 0.75
    assert torch.equal(model.norm0.weight, torch.ones(16))
    assert torch.equal(model.norm0.bias, torch.zeros(16))


def test_drop_path_schedule_and_randomness():
    model = D2SwinTransformer(**{**TINY, "drop_path_rate": 0.3})
    rates = [
        0.0 if not isinstance(block.drop_path, DropPath) else block.drop_path.drop_prob
        for layer in model.layers
        for block in layer.blocks
    ]
    assert rates == pytest.approx([0.3 * i / 7 for i in range(8)], abs=1e-6)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)["res5"], model(x)["res5"])
        model.train()
        assert not torch.equal(model(x)["res5"], model(x)["res5"])


def test_drop_path_scales_kept_samples():
    layer = DropPath(0.5).train()
    out = layer(torch.ones(1000, 3))
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert 350 < int((out[:, 0] == 0).sum()) < 650
    assert torch.equal(layer.eval()(torch.ones(5, 3)), torch.ones(5, 3))


def test_checkpointing_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    plain = D2SwinTransformer(**TINY)
    checkpointed = D2SwinTransformer(**TINY, use_checkpoint=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 40, 40)
    losses = [sum(out.sum() for out in m(x).values()) for m in (plain, checkpointed)]
    torch.testing.assert_close(losses[0], losses[1])
    for loss in losses:
        loss.backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_bad_arguments_raise_value_errors():
    model = D2SwinTransformer(**TINY)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="out_features"):
        D2SwinTransformer(**TINY, out_features=["res6"])
    with pytest.raises(ValueError, match="not divisible by 3 heads"):
        D2SwinTransformer(**{**TINY, "num_heads": (3, 2, 2, 4)})
    with pytest.raises(ValueError, match="differ in length"):
        D2SwinTransformer(**{**TINY, "num_heads": (1, 2, 2)})
