"""Mask2FormerModel / Mask2FormerForUniversalSegmentation against the transformers package."""

from __future__ import annotations

import pytest
import torch

from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerModel,
)
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.optional import require_package

transformers = require_package("transformers")

ATOL = 1e-4


def _transformers_model(tmp_path, num_labels: int, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.Mask2FormerConfig(**tiny_config_dict(num_labels))
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    model.save_pretrained(tmp_path)
    return model


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor, name: str) -> None:
    assert ours.shape == theirs.shape, name
    diff = (ours - theirs).abs().max().item()
    assert diff < ATOL, f"{name}: max abs diff {diff}"


@pytest.mark.parametrize(
    ("num_labels", "sizes"),
    [(3, [(96, 96)]), (7, [(128, 160), (96, 224)])],
)
def test_transformers_checkpoint_loads_with_same_logits(tmp_path, num_labels, sizes):
    theirs = _transformers_model(tmp_path, num_labels)
    ours = Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path)
    assert not ours.training
    torch.manual_seed(1)
    for height, width in sizes:
        pixel_values = torch.randn(2, 3, height, width)
        pixel_mask = torch.ones(2, height, width, dtype=torch.int64)
        pixel_mask[1, height // 2 :, :] = 0  # a padded second image
        with torch.no_grad():
            expected = theirs(pixel_values, pixel_mask=pixel_mask)
            got = ours(pixel_values, pixel_mask=pixel_mask)
        _assert_close(got.class_queries_logits, expected.class_queries_logits, "class logits")
        _assert_close(got.masks_queries_logits, expected.masks_queries_logits, "mask logits")
        assert got.class_queries_logits.shape[-1] == num_labels + 1


def test_hidden_states_and_auxiliary_logits_match(tmp_path):
    theirs = _transformers_model(tmp_path, 4)
    ours = Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path)
    pixel_values = torch.randn(1, 3, 96, 128)
    kwargs = {"output_hidden_states": True, "output_auxiliary_logits": True}
    with torch.no_grad():
        expected = theirs(pixel_values, **kwargs)
        got = ours(pixel_values, **kwargs)
    for name in (
        "encoder_last_hidden_state",
        "pixel_decoder_last_hidden_state",
        "transformer_decoder_last_hidden_state",
    ):
        _assert_close(got[name], expected[name], name)
    for name in (
        "encoder_hidden_states",
        "pixel_decoder_hidden_states",
        "transformer_decoder_hidden_states",
    ):
        assert len(got[name]) == len(expected[name]), name
        for ours_state, their_state in zip(got[name], expected[name]):
            _assert_close(ours_state, their_state, name)
    assert len(got.auxiliary_logits) == len(expected.auxiliary_logits) == 3
    for ours_aux, their_aux in zip(got.auxiliary_logits, expected.auxiliary_logits):
        for key in ("class_queries_logits", "masks_queries_logits"):
            _assert_close(ours_aux[key], their_aux[key], key)


def test_base_model_matches_transformers_base_model(tmp_path):
    torch.manual_seed(0)
    config = transformers.Mask2FormerConfig(**tiny_config_dict(2))
    theirs = transformers.Mask2FormerModel(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = Mask2FormerModel.from_pretrained(tmp_path)
    pixel_values = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected = theirs(pixel_values, output_hidden_states=True)
        got = ours(pixel_values, output_hidden_states=True)
    _assert_close(got.masks_queries_logits[-1], expected.masks_queries_logits[-1], "masks")
    for ours_state, their_state in zip(
        got.transformer_decoder_intermediate_states,
        expected.transformer_decoder_intermediate_states,
    ):
        _assert_close(ours_state, their_state, "intermediate states")


def test_our_checkpoint_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    ours = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**tiny_config_dict(5))).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = transformers.Mask2FormerForUniversalSegmentation.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    pixel_values = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        expected = theirs.eval()(pixel_values)
        got = ours(pixel_values)
    _assert_close(got.class_queries_logits, expected.class_queries_logits, "class logits")
    _assert_close(got.masks_queries_logits, expected.masks_queries_logits, "mask logits")


def test_losses_agree_with_shared_point_sampling(tmp_path):
    theirs = _transformers_model(tmp_path, 4)
    ours = Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path)
    generator = torch.Generator().manual_seed(3)
    pixel_values = torch.randn(2, 3, 96, 128, generator=generator)
    mask_labels = [
        (torch.rand(3, 96, 128, generator=generator) > 0.5).float(),
        (torch.rand(1, 96, 128, generator=generator) > 0.5).float(),
    ]
    class_labels = [torch.tensor([0, 2, 3]), torch.tensor([1])]
    # Matching and point sampling draw from torch's global generator in the same order.
    torch.manual_seed(11)
    expected = theirs(pixel_values, mask_labels=mask_labels, class_labels=class_labels).loss
    torch.manual_seed(11)
    got = ours(pixel_values, mask_labels=mask_labels, class_labels=class_labels).loss
    assert abs(got.item() - expected.item()) < ATOL * max(1.0, abs(expected.item()))
    got.backward()
    assert ours.model.backbone.patch_embed.proj.weight.grad is not None


def _assert_same_structure(ours, theirs, name: str) -> None:
    """Equal nesting (tuples, lists, dicts) with tensors close at every leaf."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, torch.Tensor), f"{name}: got {type(ours).__name__}"
        _assert_close(ours, theirs, name)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), name
        for key in theirs:
            _assert_same_structure(ours[key], theirs[key], f"{name}[{key!r}]")
    else:
        assert isinstance(ours, (tuple, list)), f"{name}: got {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{name}: {len(ours)} items, expected {len(theirs)}"
        for index, (ours_item, their_item) in enumerate(zip(ours, theirs)):
            _assert_same_structure(ours_item, their_item, f"{name}[{index}]")


@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("auxiliary", [False, True])
@pytest.mark.parametrize("hidden", [False, True])
def test_tuple_outputs_follow_transformers_field_order(tmp_path, hidden, auxiliary, with_labels):
    theirs = _transformers_model(tmp_path, 3)
    ours = Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path)
    generator = torch.Generator().manual_seed(5)
    pixel_values = torch.randn(1, 3, 96, 96, generator=generator)
    kwargs = {"output_hidden_states": hidden, "output_auxiliary_logits": auxiliary}
    if with_labels:
        kwargs["mask_labels"] = [(torch.rand(2, 96, 96, generator=generator) > 0.5).float()]
        kwargs["class_labels"] = [torch.tensor([0, 2])]
    torch.manual_seed(7)
    if with_labels:
        # transformers 5.x fails on its own tuple path with a loss ("Tensor + tuple"); its
        # documented tuple is the output's non-None fields in field order, i.e. to_tuple().
        expected = theirs(pixel_values, **kwargs).to_tuple()
    else:
        expected = theirs(pixel_values, return_dict=False, **kwargs)
    torch.manual_seed(7)
    got = ours(pixel_values, return_dict=False, **kwargs)
    _assert_same_structure(got, expected, "outputs")


@pytest.mark.parametrize("hidden", [False, True])
def test_base_model_tuple_follows_transformers_field_order(tmp_path, hidden):
    torch.manual_seed(0)
    theirs = transformers.Mask2FormerModel(transformers.Mask2FormerConfig(**tiny_config_dict(2)))
    theirs.eval().save_pretrained(tmp_path)
    ours = Mask2FormerModel.from_pretrained(tmp_path)
    pixel_values = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected = theirs(pixel_values, output_hidden_states=hidden, return_dict=False)
        got = ours(pixel_values, output_hidden_states=hidden, return_dict=False)
    _assert_same_structure(got, expected, "outputs")


def test_tuple_output_and_label_errors(tmp_path):
    ours = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**tiny_config_dict(2))).eval()
    pixel_values = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        as_tuple = ours(pixel_values, return_dict=False)
        as_dict = ours(pixel_values)
    assert torch.equal(as_tuple[0], as_dict.class_queries_logits)
    assert torch.equal(as_dict[1], as_dict["masks_queries_logits"])
    with pytest.raises(ValueError, match="mask_labels and class_labels"):
        ours(pixel_values, mask_labels=[torch.zeros(1, 96, 96)])
    with pytest.raises(ValueError, match="pixel_values"):
        ours(torch.randn(1, 4, 96, 96))


def test_new_num_labels_needs_ignore_mismatched_sizes(tmp_path):
    _transformers_model(tmp_path, 4)
    with pytest.raises(ValueError, match="ignore_mismatched_sizes"):
        Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path, num_labels=2)
    model = Mask2FormerForUniversalSegmentation.from_pretrained(
        tmp_path, num_labels=2, ignore_mismatched_sizes=True
    )
    assert model.config.num_labels == 2
    assert model.model.sem_seg_head.predictor.class_embed.out_features == 3
