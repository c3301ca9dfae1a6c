"""Eval attention masks made at the attended level's resolution (the decoder's default in eval
mode) against the original's rule: full-resolution mask logits, resized, thresholded."""

from __future__ import annotations

import pytest
import torch

from mask2former.hf import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerModel
from mask2former.modeling.transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    compute_attention_mask,
)
from mask2former.modeling.transformer_decoder import mask2former_transformer_decoder as module
from mask2former.modeling.transformer_decoder.mask2former_transformer_decoder import (
    level_attention_mask,
    resize_mask_features,
)
from tests.hf.tiny_hf_config import tiny_config_dict

# (height, width) of the network input; the last two are no multiples of 32, so the mask
# features (1/4) are no integer multiple of the levels (1/8, 1/16, 1/32)
IMAGE_SIZES = [(64, 96), (100, 75), (123, 97)]
MASK_DIM = 16
NUM_QUERIES = 6
NUM_HEADS = 4


def _sizes(height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Mask-feature size (1/4) and level sizes (1/32, 1/16, 1/8) of stride-2 convolutions."""
    size = (-(-height // 4), -(-width // 4))
    levels = [size]
    for _ in range(3):
        levels.append((-(-levels[-1][0] // 2), -(-levels[-1][1] // 2)))
    return size, levels[:0:-1]


def _decoder(dec_layers: int = 4, dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    decoder = MultiScaleMaskedTransformerDecoder(
        in_channels=32, num_classes=5, hidden_dim=32, num_queries=NUM_QUERIES, nheads=NUM_HEADS,
        dim_feedforward=48, dec_layers=dec_layers, pre_norm=False, mask_dim=MASK_DIM,
        enforce_input_project=False,
    )  # fmt: skip
    return decoder.to(dtype)


def _inputs(image_size, batch: int, dtype: torch.dtype = torch.float64, channels_last=False):
    generator = torch.Generator().manual_seed(1)
    mask_size, level_sizes = _sizes(*image_size)
    levels = [
        torch.randn(batch, 32, h, w, generator=generator, dtype=dtype) for h, w in level_sizes
    ]
    mask_features = torch.randn(batch, MASK_DIM, *mask_size, generator=generator, dtype=dtype)
    if channels_last:  # as a channels-last pixel decoder hands them on in eval
        mask_features = mask_features.contiguous(memory_format=torch.channels_last)
    return levels, mask_features


def _run(decoder, levels, mask_features, **kwargs):
    """The decoder's output and the attention mask each cross-attention layer received."""
    seen = []
    hooks = [
        layer.register_forward_pre_hook(
            lambda module, args, kw: seen.append(kw["memory_mask"]), with_kwargs=True
        )
        for layer in decoder.transformer_cross_attention_layers
    ]
    try:
        with torch.no_grad():
            out = decoder(levels, mask_features, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    return out, seen


@pytest.mark.parametrize("image_size", IMAGE_SIZES)
@pytest.mark.parametrize("batch", [1, 2])
def test_level_attention_mask_equals_the_full_resolution_rule(image_size, batch):
    mask_size, level_sizes = _sizes(*image_size)
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(batch, MASK_DIM, *mask_size, generator=generator, dtype=torch.float64)
    embed = torch.randn(batch, 5, MASK_DIM, generator=generator, dtype=torch.float64)
    embed[:, 0] = -torch.rand(batch, MASK_DIM, generator=generator)  # negative everywhere
    embed[:, 1] = torch.rand(batch, MASK_DIM, generator=generator)  # positive everywhere
    logits = torch.bmm(embed, features.flatten(2)).view(batch, 5, *mask_size)
    for size in level_sizes:
        expected = compute_attention_mask(logits, size, num_heads=2)
        got = level_attention_mask(embed, resize_mask_features(features, size), num_heads=2)
        assert torch.equal(got, expected)
        assert not got[:, :2].any()  # empty mask -> attends everywhere; full mask too
        assert got.any()  # the random queries are masked somewhere


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("image_size", IMAGE_SIZES)
@pytest.mark.parametrize("batch", [1, 2])
def test_eval_default_path_gives_the_full_resolution_masks_and_outputs(dtype, image_size, batch):
    decoder = _decoder(dtype=dtype).eval()
    levels, mask_features = _inputs(image_size, batch, dtype, channels_last=batch == 2)
    fast, fast_masks = _run(decoder, levels, mask_features)
    full, full_masks = _run(decoder, levels, mask_features, output_aux_masks=True)
    assert len(fast_masks) == len(full_masks) == decoder.num_layers
    for got, expected in zip(fast_masks, full_masks):
        assert torch.equal(got, expected)
    assert any(mask.any() for mask in full_masks) and not all(mask.all() for mask in full_masks)
    # Same attention masks, so the same queries: the last prediction, made at full resolution
    # in both paths, is identical (no tolerance needed).
    assert torch.equal(fast.pred_logits, full.pred_logits)
    assert torch.equal(fast.pred_masks, full.pred_masks)
    assert fast.pred_masks.is_contiguous()
    for fast_aux, full_aux in zip(fast.aux_outputs, full.aux_outputs, strict=True):
        assert set(fast_aux) == {"pred_logits"}  # no silently different masks
        assert torch.equal(fast_aux["pred_logits"], full_aux["pred_logits"])


@pytest.mark.parametrize("dec_layers", [0, 1, 2, 4])
def test_fewer_layers_than_levels(dec_layers):
    decoder = _decoder(dec_layers).eval()
    levels, mask_features = _inputs(IMAGE_SIZES[1], 2)
    fast, fast_masks = _run(decoder, levels, mask_features)
    full, full_masks = _run(decoder, levels, mask_features, output_aux_masks=True)
    assert len(fast.aux_outputs) == dec_layers
    assert all(torch.equal(a, b) for a, b in zip(fast_masks, full_masks, strict=True))
    assert torch.equal(fast.pred_masks, full.pred_masks)


def test_requested_aux_masks_are_the_full_resolution_predictions():
    decoder = _decoder().eval()
    levels, mask_features = _inputs(IMAGE_SIZES[2], 2)
    out, memory_masks = _run(
        decoder, levels, mask_features, output_aux_masks=True, output_hidden_states=True
    )
    _, level_sizes = _sizes(*IMAGE_SIZES[2])
    with torch.no_grad():
        for i, aux in enumerate(out.aux_outputs):
            embed = decoder.mask_embed(out.query_states[i])
            expected = torch.einsum("bqc,bchw->bqhw", embed, mask_features)
            torch.testing.assert_close(aux["pred_masks"], expected, rtol=1e-12, atol=1e-12)
            size = level_sizes[i % 3]
            assert torch.equal(memory_masks[i], compute_attention_mask(aux["pred_masks"], size, 4))


def test_training_path_stays_at_full_resolution(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the low-resolution attention masks ran in training mode")

    monkeypatch.setattr(module, "level_attention_mask", fail)
    monkeypatch.setattr(module, "resize_mask_features", fail)
    decoder = _decoder().train()
    levels, mask_features = _inputs(IMAGE_SIZES[1], 2)
    for kwargs in ({}, {"output_aux_masks": False}):
        out, memory_masks = _run(decoder, levels, mask_features, **kwargs)
        _, level_sizes = _sizes(*IMAGE_SIZES[1])
        assert len(out.aux_outputs) == decoder.num_layers
        for i, aux in enumerate(out.aux_outputs):
            expected = compute_attention_mask(aux["pred_masks"], level_sizes[i % 3], NUM_HEADS)
            assert torch.equal(memory_masks[i], expected)


def _aux_masks_computed(model) -> list[bool]:
    """Per forward of ``model``: whether the head returned the earlier predictions' masks."""
    calls = []

    def record(module, args, output):
        calls.append(all("pred_masks" in aux for aux in output.aux_outputs))

    model.model.sem_seg_head.register_forward_hook(record)
    return calls


def test_transformers_door_computes_the_earlier_masks_when_asked_for():
    torch.manual_seed(0)
    config = Mask2FormerConfig(**tiny_config_dict(3))
    model = Mask2FormerForUniversalSegmentation(config).eval()
    calls = _aux_masks_computed(model)
    pixel_values = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        plain = model(pixel_values)
        with_aux = model(pixel_values, output_auxiliary_logits=True)
        model(pixel_values, mask_labels=[torch.ones(1, 96, 128)], class_labels=[torch.tensor([1])])
    assert calls == [False, True, True]  # the auxiliary logits and losses need them
    assert plain.auxiliary_logits is None and len(with_aux.auxiliary_logits) == 3
    assert torch.equal(plain.masks_queries_logits, with_aux.masks_queries_logits)
    assert torch.equal(plain.class_queries_logits, with_aux.class_queries_logits)
    assert isinstance(model.model, Mask2FormerModel)  # returns every prediction's masks
    with torch.no_grad():
        masks = model.model(pixel_values).masks_queries_logits
    assert len(masks) == 4 and all(m.shape == (1, 6, 24, 32) for m in masks)
