"""Caffe2 name conversion, suffix alignment and the key report helpers."""

import logging

import pytest
import torch

from mask2former.checkpoint import align_and_update_state_dicts, convert_c2_name
from mask2former.checkpoint.key_report import format_matched_table, group_keys


@pytest.mark.parametrize(
    ("c2_name", "d2_name"),
    [
        ("conv1_w", "stem.conv1.weight"),
        ("res_conv1_bn_s", "stem.conv1.norm.weight"),
        ("res_conv1_bn_b", "stem.conv1.norm.bias"),
        ("res_conv1_bn_rm", "stem.conv1.norm.running_mean"),
        ("res_conv1_bn_riv", "stem.conv1.norm.running_var"),
        ("res2_0_branch2a_w", "res2.0.conv1.weight"),
        ("res2_0_branch2a_bn_s", "res2.0.conv1.norm.weight"),
        ("res3_1_branch2b_bn_b", "res3.1.conv2.norm.bias"),
        ("res4_5_branch2c_w", "res4.5.conv3.weight"),
        ("res5_0_branch1_w", "res5.0.shortcut.weight"),
        ("res5_0_branch1_bn_riv", "res5.0.shortcut.norm.running_var"),
        ("res2_0_branch2a_gn_s", "res2.0.conv1.norm.weight"),
        ("fc1000_w", "fc1000.weight"),
        ("pred_b", "linear.bias"),
    ],
)
def test_convert_c2_name(c2_name, d2_name):
    assert convert_c2_name(c2_name) == d2_name


def test_suffix_alignment_prefers_longest_match():
    model = {
        "backbone.conv1.weight": torch.zeros(2),
        "backbone.res2.conv1.weight": torch.zeros(3),
        "head.my_conv1.weight": torch.zeros(2),
    }
    checkpoint = {"conv1.weight": torch.ones(2), "res2.conv1.weight": torch.full((3,), 2.0)}
    aligned, matched = align_and_update_state_dicts(model, checkpoint)
    assert matched == {
        "backbone.conv1.weight": "conv1.weight",
        "backbone.res2.conv1.weight": "res2.conv1.weight",
    }
    assert torch.equal(aligned["backbone.res2.conv1.weight"], torch.full((3,), 2.0))
    assert "head.my_conv1.weight" not in aligned  # "my_conv1" is not a dot-suffix match


def test_suffix_alignment_skips_shape_mismatch_and_keeps_unmatched(caplog):
    model = {"backbone.norm.weight": torch.zeros(4), "backbone.blocks.0.weight": torch.zeros(2)}
    checkpoint = {
        "norm.weight": torch.ones(8),
        "blocks.0.weight": torch.ones(2),
        "head.weight": torch.ones(5),
    }
    with caplog.at_level(logging.WARNING):
        aligned, matched = align_and_update_state_dicts(model, checkpoint)
    assert matched == {"backbone.blocks.0.weight": "blocks.0.weight"}
    assert "backbone.norm.weight" not in aligned
    assert set(aligned) == {"backbone.blocks.0.weight", "norm.weight", "head.weight"}
    assert "backbone.norm.weight" in caplog.text
    assert "(8,)" in caplog.text and "(4,)" in caplog.text


def test_suffix_alignment_rejects_ambiguous_match():
    model = {"a.norm.weight": torch.zeros(4), "b.norm.weight": torch.zeros(4)}
    with pytest.raises(ValueError, match="norm.weight"):
        align_and_update_state_dicts(model, {"norm.weight": torch.ones(4)})


def test_c2_conversion_inside_alignment():
    model = {"backbone.stem.conv1.weight": torch.zeros(4, 3, 1, 1)}
    checkpoint = {"conv1_w": torch.ones(4, 3, 1, 1), "fc1000_b": torch.ones(10)}
    aligned, matched = align_and_update_state_dicts(model, checkpoint, c2_conversion=True)
    assert matched == {"backbone.stem.conv1.weight": "conv1_w"}
    assert set(aligned) == {"backbone.stem.conv1.weight", "fc1000.bias"}


def test_group_keys_and_table():
    keys = ["m.conv.norm.bias", "m.conv.norm.weight", "m.conv.weight", "other"]
    assert group_keys(keys) == ["m.conv.norm.{bias, weight}", "m.conv.weight", "other"]
    table = format_matched_table(
        {"bb.conv.weight": "conv.weight", "bb.conv.bias": "conv.bias"},
        {"bb.conv.weight": (2, 3), "bb.conv.bias": (2,)},
    )
    assert "bb.conv.{bias, weight} <- conv.{bias, weight} | (2,) (2,3)" in table
