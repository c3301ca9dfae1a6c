"""Mask2FormerConfig: defaults and config.json compatibility with transformers, both ways."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mask2former.hf import Mask2FormerConfig
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.optional import require_package

transformers = require_package("transformers")


def _comparable(config_dict: dict) -> dict:
    ignored = {"transformers_version", "architectures", "dtype", "_name_or_path"}
    return {k: v for k, v in config_dict.items() if k not in ignored}


def test_defaults_equal_transformers():
    ours = Mask2FormerConfig()
    theirs = transformers.Mask2FormerConfig()
    for field in dataclasses.fields(Mask2FormerConfig):
        if field.name != "backbone_config":
            assert getattr(ours, field.name) == _listify(getattr(theirs, field.name)), field.name
    assert ours.num_labels == theirs.num_labels == 2
    assert ours.backbone_config.depths == list(theirs.backbone_config.depths) == [2, 2, 18, 2]
    assert ours.backbone_config.drop_path_rate == theirs.backbone_config.drop_path_rate
    assert ours.backbone_config.out_indices == list(theirs.backbone_config.out_indices)
    assert ours.hidden_size == ours.hidden_dim and ours.num_hidden_layers == ours.decoder_layers


def _listify(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("values", [{}, tiny_config_dict(5, pre_norm=True, num_queries=9)])
def test_config_json_round_trips_both_ways(tmp_path, values):
    theirs = transformers.Mask2FormerConfig(**values)
    theirs.save_pretrained(tmp_path / "theirs")
    ours = Mask2FormerConfig.from_pretrained(tmp_path / "theirs")
    assert ours.num_labels == theirs.num_labels
    assert all(isinstance(key, int) for key in ours.id2label)
    ours.save_pretrained(tmp_path / "ours")
    back = transformers.Mask2FormerConfig.from_pretrained(tmp_path / "ours")
    assert _comparable(back.to_dict()) == _comparable(theirs.to_dict())
    written = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert written["model_type"] == "mask2former"
    assert written["backbone_config"]["model_type"] == "swin"


def test_accepts_a_transformers_swin_config_and_rejects_other_backbones():
    swin = transformers.SwinConfig(
        embed_dim=32, out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = Mask2FormerConfig(backbone_config=swin)
    assert config.backbone_config.embed_dim == 32
    assert config.backbone_config.out_indices == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="backbone_config.model_type"):
        Mask2FormerConfig(backbone_config={"model_type": "resnet"})
    with pytest.raises(ValueError, match="out_features"):
        Mask2FormerConfig(backbone_config={"out_features": ["stage9"]})


def test_num_labels_and_errors(tmp_path):
    config = Mask2FormerConfig(num_labels=3)
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    config.num_labels = 4
    assert config.label2id["LABEL_3"] == 3
    with pytest.raises(FileNotFoundError, match="config.json"):
        Mask2FormerConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type"):
        Mask2FormerConfig.from_pretrained(tmp_path)


def test_reads_every_key_transformers_writes_and_rejects_unknown_ones(tmp_path):
    theirs = transformers.Mask2FormerConfig(**tiny_config_dict(3))
    ours = Mask2FormerConfig.from_dict(theirs.to_dict())  # versions, names, dtype: dropped
    assert ours.backbone_config.embed_dim == theirs.backbone_config.embed_dim
    with pytest.raises(TypeError, match=r"unknown settings \['hiden_dim'\]"):
        Mask2FormerConfig.from_dict(dict(theirs.to_dict(), hiden_dim=8))
    with pytest.raises(TypeError, match="backbone_config: unknown settings"):
        Mask2FormerConfig(backbone_config={"embed_dims": 8})
    with pytest.raises(TypeError, match="hiden_dim"):
        Mask2FormerConfig(hiden_dim=8)
    with pytest.raises(ValueError, match="use_timm_backbone"):
        Mask2FormerConfig.from_dict({"use_timm_backbone": True})
    assert Mask2FormerConfig.from_dict({"hidden_size": 64}).hidden_dim == 64
