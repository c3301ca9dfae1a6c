"""Masked-attention transformer decoder: outputs, the attention-mask rule, level order, names."""

import pytest
import torch
from torch import nn

from mask2former.config import get_cfg
from mask2former.layers.position_encoding import PositionEmbeddingSine
from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
    compute_attention_mask,
)

LEVEL_SIZES = [(3, 4), (6, 8), (12, 16)]  # coarse to fine
MASK_SIZE = (24, 32)


def _decoder(in_channels: int = 32, **overrides) -> MultiScaleMaskedTransformerDecoder:
    kwargs = dict(
        num_classes=5,
        hidden_dim=32,
        num_queries=6,
        nheads=4,
        dim_feedforward=48,
        dec_layers=4,
        pre_norm=False,
        mask_dim=16,
        enforce_input_project=False,
    )
    kwargs.update(overrides)
    return MultiScaleMaskedTransformerDecoder(in_channels, True, **kwargs)


def _inputs(in_channels: int = 32, batch: int = 2):
    generator = torch.Generator().manual_seed(0)
    levels = [torch.randn(batch, in_channels, h, w, generator=generator) for h, w in LEVEL_SIZES]
    mask_features = torch.randn(batch, 16, *MASK_SIZE, generator=generator)
    return levels, mask_features


def test_output_shapes_and_query_states():
    torch.manual_seed(0)
    decoder = _decoder().eval()
    levels, mask_features = _inputs()
    with torch.no_grad():
        out = decoder(levels, mask_features, output_hidden_states=True, output_aux_masks=True)
        fast = decoder(levels, mask_features)
    assert out["pred_logits"].shape == (2, 6, 6)
    assert out["pred_masks"].shape == (2, 6, *MASK_SIZE)
    assert len(out["aux_outputs"]) == 4  # initial queries + 3 layers before the last
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (2, 6, 6)
        assert aux["pred_masks"].shape == (2, 6, *MASK_SIZE)
    # in eval mode the earlier masks are made on request only
    assert [set(aux) for aux in fast["aux_outputs"]] == [{"pred_logits"}] * 4
    assert fast.query_states is None and fast["pred_masks"].shape == (2, 6, *MASK_SIZE)
    states = out.query_states
    assert len(states) == 5 and all(s.shape == (2, 6, 32) for s in states)
    with torch.no_grad():
        assert torch.allclose(decoder.class_embed(states[-1]), out["pred_logits"])
        assert torch.allclose(decoder.class_embed(states[0]), out["aux_outputs"][0]["pred_logits"])
        # the initial prediction depends on the learnable queries only, not on the image
        first = decoder.decoder_norm(decoder.query_feat.weight)
        assert torch.allclose(states[0], first.expand(2, -1, -1), atol=1e-6)


def test_attention_mask_rule_on_hand_made_logits():
    # 4x4 logits, piecewise constant on 2x2 blocks, resized to 2x2 (block averages)
    logits = torch.full((1, 3, 4, 4), -3.0)
    logits[0, 0, :2, :2] = 3.0  # query 0: top-left block only
    logits[0, 2] = 3.0  # query 2: everywhere
    logits[0, 2, 2:, 2:] = 0.0  # sigmoid(0) = 0.5 is NOT masked (strictly below 0.5 is)
    # query 1: empty everywhere
    mask = compute_attention_mask(logits, (2, 2), num_heads=2)
    assert mask.shape == (2, 3, 4) and mask.dtype == torch.bool
    expected = torch.tensor(
        [
            [False, True, True, True],  # attends to its block only
            [False, False, False, False],  # empty mask: attends everywhere
            [False, False, False, False],
        ]
    )
    assert torch.equal(mask[0], expected) and torch.equal(mask[1], expected)


def test_attention_mask_is_computed_at_the_target_resolution():
    # a thin positive stripe survives bilinear downsampling only where it dominates
    logits = torch.full((1, 1, 4, 8), -4.0)
    logits[..., :, 0:2] = 4.0
    mask = compute_attention_mask(logits, (2, 4), num_heads=1)
    assert torch.equal(mask[0, 0].view(2, 4), torch.tensor([[False, True, True, True]] * 2))
    upsampled = compute_attention_mask(logits, (8, 16), num_heads=1)
    assert upsampled.shape == (1, 1, 128)
    assert not upsampled[0, 0].view(8, 16)[:, :3].any()
    assert upsampled[0, 0].view(8, 16)[:, 5:].all()


def test_cross_attention_uses_previous_prediction_and_round_robin_levels():
    torch.manual_seed(0)
    decoder = _decoder(dec_layers=5).eval()
    levels, mask_features = _inputs()
    seen = []

    def record(module, args, kwargs):
        seen.append((args[1].shape[0], kwargs["memory_mask"]))

    for layer in decoder.transformer_cross_attention_layers:
        layer.register_forward_pre_hook(record, with_kwargs=True)
    with torch.no_grad():
        out = decoder(levels, mask_features, output_aux_masks=True)
    predictions = [aux["pred_masks"] for aux in out["aux_outputs"]]
    for i, (memory_length, memory_mask) in enumerate(seen):
        size = LEVEL_SIZES[i % 3]
        assert memory_length == size[0] * size[1]
        assert torch.equal(memory_mask, compute_attention_mask(predictions[i], size, 4))


def test_input_projection_and_parameter_names():
    state = _decoder().state_dict()
    expected_shapes = {
        "query_feat.weight": (6, 32),
        "query_embed.weight": (6, 32),
        "level_embed.weight": (3, 32),
        "transformer_self_attention_layers.0.self_attn.in_proj_weight": (96, 32),
        "transformer_self_attention_layers.3.self_attn.out_proj.weight": (32, 32),
        "transformer_cross_attention_layers.0.multihead_attn.in_proj_weight": (96, 32),
        "transformer_cross_attention_layers.0.norm.weight": (32,),
        "transformer_ffn_layers.0.linear1.weight": (48, 32),
        "transformer_ffn_layers.0.linear2.weight": (32, 48),
        "decoder_norm.weight": (32,),
        "class_embed.weight": (6, 32),
        "mask_embed.layers.0.weight": (32, 32),
        "mask_embed.layers.2.weight": (16, 32),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(key.startswith("input_proj") for key in state)  # channels match
    decoder = _decoder()
    assert all(isinstance(p, nn.Sequential) and len(p) == 0 for p in decoder.input_proj)
    assert tuple(_decoder(in_channels=24).state_dict()["input_proj.2.weight"].shape) == (
        32, 24, 1, 1,
    )  # fmt: skip
    assert "input_proj.0.bias" in _decoder(enforce_input_project=True).state_dict()


def test_projected_inputs_and_pre_norm_run():
    torch.manual_seed(0)
    decoder = _decoder(in_channels=24, pre_norm=True).eval()
    levels, mask_features = _inputs(in_channels=24, batch=1)
    with torch.no_grad():
        out = decoder(levels, mask_features)
    assert out["pred_masks"].shape == (1, 6, *MASK_SIZE)
    assert torch.isfinite(out["pred_logits"]).all()


def test_wrong_number_of_levels_raises():
    decoder = _decoder()
    levels, mask_features = _inputs()
    with pytest.raises(ValueError, match="3 feature levels"):
        decoder(levels[:2], mask_features)


def test_old_static_query_name_is_renamed_on_load():
    source = _decoder()
    state = {
        k.replace("query_feat", "static_query"): v.clone() for k, v in source.state_dict().items()
    }
    target = _decoder()
    target.load_state_dict(state)
    assert torch.equal(target.query_feat.weight, source.query_feat.weight)


def test_build_from_config():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME", "MultiScaleMaskedTransformerDecoder",
            "MODEL.MASK_FORMER.HIDDEN_DIM", 32,
            "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 6,
            "MODEL.MASK_FORMER.NHEADS", 4,
            "MODEL.MASK_FORMER.DIM_FEEDFORWARD", 48,
            "MODEL.MASK_FORMER.DEC_LAYERS", 4,
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 7,
            "MODEL.SEM_SEG_HEAD.MASK_DIM", 16,
        ]
    )  # fmt: skip
    decoder = build_transformer_decoder(cfg, 32)
    assert decoder.num_layers == 3  # DEC_LAYERS counts the prediction from the raw queries
    assert decoder.class_embed.out_features == 8
    cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "Nope"
    with pytest.raises(KeyError, match="MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME"):
        build_transformer_decoder(cfg, 32)


def test_position_embedding_sine_values():
    embed = PositionEmbeddingSine(num_pos_feats=4, normalize=True)(torch.zeros(1, 1, 2, 3))
    assert embed.shape == (1, 8, 2, 3)
    scale = 2 * torch.pi
    y = torch.tensor([1.0, 2.0]) / (2 + 1e-6) * scale
    x = torch.tensor([1.0, 2.0, 3.0]) / (3 + 1e-6) * scale
    # channels: y sin/cos at frequency 1, y sin/cos at 100, then the same for x
    assert torch.allclose(embed[0, 0, :, 0], y.sin())
    assert torch.allclose(embed[0, 1, :, 0], y.cos())
    assert torch.allclose(embed[0, 2, :, 0], (y / 100).sin())
    assert torch.allclose(embed[0, 4, 0, :], x.sin())
    assert torch.allclose(embed[0, 7, 0, :], (x / 100).cos())
    with pytest.raises(ValueError, match="normalize"):
        PositionEmbeddingSine(4, scale=1.0)
