"""Eval-only fast paths of the network against the training-mode (original) code paths."""

from __future__ import annotations

import pytest
import torch

from mask2former.layers.ms_deform_attn_module import MSDeformAttn
from mask2former.layers.position_encoding import PositionEmbeddingSine
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.layers.wrappers import flatten_spatial
from mask2former.modeling.backbone.resnet import build_resnet
from mask2former.modeling.pixel_decoder import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder

SHAPES = [(8, 12), (4, 6), (2, 3)]


def test_ms_deform_attn_eval_softmax_matches_training():
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=32, n_levels=3, n_heads=4, n_points=4)
    torch.nn.init.normal_(attn.attention_weights.weight)
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.1)
    shapes = torch.tensor(SHAPES)
    starts = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    length = int(shapes.prod(1).sum())
    query, value = torch.randn(2, length, 32), torch.randn(2, length, 32)
    reference = torch.rand(2, length, 3, 2)
    trained = attn.train()(query, reference, value, shapes, starts)
    with torch.no_grad():
        evaluated = attn.eval()(query, reference, value, shapes, starts)
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-5, atol=1e-6)


def _decoder() -> MultiScaleMaskedTransformerDecoder:
    return MultiScaleMaskedTransformerDecoder(
        in_channels=16, num_classes=3, hidden_dim=32, num_queries=6, nheads=4,
        dim_feedforward=48, dec_layers=4, pre_norm=False, mask_dim=16,
        enforce_input_project=True,
    )  # fmt: skip


@pytest.mark.parametrize("channels_last", [False, True])
def test_decoder_eval_matches_training_path(channels_last):
    torch.manual_seed(0)
    decoder = _decoder()
    levels = [torch.randn(2, 16, h, w) for h, w in SHAPES]
    mask_features = torch.randn(2, 16, 16, 24)
    trained = decoder.train()(levels, mask_features)
    if channels_last:  # what a channels-last backbone hands on in eval
        levels = [x.contiguous(memory_format=torch.channels_last) for x in levels]
        mask_features = mask_features.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        evaluated = decoder.eval()(levels, mask_features)
        with_aux = decoder(levels, mask_features, output_aux_masks=True)
    assert evaluated["pred_masks"].is_contiguous()
    for key in ("pred_logits", "pred_masks"):
        torch.testing.assert_close(evaluated[key], trained[key].detach(), rtol=1e-5, atol=1e-5)
    for got, expected in zip(with_aux["aux_outputs"], trained["aux_outputs"]):
        torch.testing.assert_close(got["pred_masks"], expected["pred_masks"].detach())


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_eval_features_are_channels_last_and_equal_training_layout_values(depth):
    torch.manual_seed(0)
    model = build_resnet(depth=depth, norm="FrozenBN", res2_out_channels=64, out_features=["res3"])
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        trained = model.train()(images)["res3"]
        evaluated = model.eval()(images)["res3"]
    assert trained.is_contiguous()
    assert evaluated.is_contiguous(memory_format=torch.channels_last)
    # float32 rounding of the folded weights grows with the depth and the features' scale
    scale = float(trained.abs().max())
    torch.testing.assert_close(evaluated, trained, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("batch", [1, 2])
def test_pixel_decoder_eval_matches_training_path(batch):
    """Fused encoder linears (bias, ReLU, residual), flat sampling locations and the
    channels-last 2x upsampling against the training-mode ops (dropout 0)."""
    torch.manual_seed(0)
    shapes = {f"res{i + 2}": ShapeSpec(channels=8 * (i + 1), stride=4 * 2**i) for i in range(4)}
    decoder = MSDeformAttnPixelDecoder(
        shapes, transformer_dropout=0.0, transformer_nheads=4, transformer_dim_feedforward=48,
        transformer_enc_layers=2, conv_dim=32, mask_dim=24, norm="GN",
        transformer_in_features=["res3", "res4", "res5"], common_stride=4,
    )  # fmt: skip
    for layer in decoder.transformer.encoder.layers:  # non-trivial offsets and weights
        torch.nn.init.normal_(layer.self_attn.sampling_offsets.weight, std=0.1)
        torch.nn.init.normal_(layer.self_attn.attention_weights.weight)
    features = {
        name: torch.randn(batch, spec.channels, 128 // spec.stride, 96 // spec.stride)
        for name, spec in shapes.items()
    }
    trained = decoder.train().forward_features(features)
    channels_last = {  # what the ResNet hands on in eval
        name: x.contiguous(memory_format=torch.channels_last) for name, x in features.items()
    }
    with torch.no_grad():
        evaluated = decoder.eval().forward_features(channels_last)
    for got, expected in zip(
        [evaluated[0], evaluated[1], *evaluated[2]], [trained[0], trained[1], *trained[2]]
    ):
        torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-5)


def test_position_embedding_without_mask_equals_the_all_valid_mask():
    embed = PositionEmbeddingSine(16, normalize=True)
    x = torch.randn(2, 4, 7, 9)
    assert torch.equal(embed(x), embed(x, torch.zeros(2, 7, 9, dtype=torch.bool)))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_flatten_spatial_is_a_view_for_both_layouts(memory_format):
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=memory_format)
    tokens = flatten_spatial(x)
    assert tokens.data_ptr() == x.data_ptr()
    assert torch.equal(tokens, x.flatten(2).transpose(1, 2))
