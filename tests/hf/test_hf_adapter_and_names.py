"""Both doors build the same modules, and transformers <-> original names map both ways."""

from __future__ import annotations

import os

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    adapter,
    hf_to_original,
    original_to_hf,
)
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.backbone.build import build_backbone
from mask2former.modeling.backbone.swin import D2SwinTransformer
from mask2former.modeling.build import build_model
from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.optional import require_package

SWIN_YAML = os.path.join(
    os.path.dirname(__file__),
    "..",
    "..",
    "configs",
    "coco",
    "panoptic-segmentation",
    "swin",
    "maskformer2_swin_tiny_bs16_50ep.yaml",
)


def _equivalent_yaml_cfg(num_labels: int):
    """The YAML-door config equivalent to ``tiny_config_dict(num_labels)``."""
    values = tiny_config_dict(num_labels)
    swin = values["backbone_config"]
    cfg = get_cfg()
    cfg.merge_from_file(SWIN_YAML)
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TRAIN = ()
    cfg.MODEL.SWIN.EMBED_DIM = swin["embed_dim"]
    cfg.MODEL.SWIN.DEPTHS = swin["depths"]
    cfg.MODEL.SWIN.NUM_HEADS = swin["num_heads"]
    cfg.MODEL.SWIN.WINDOW_SIZE = swin["window_size"]
    cfg.MODEL.SWIN.DROP_PATH_RATE = swin["drop_path_rate"]
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_labels
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = values["feature_size"]
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = values["mask_feature_size"]
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = values["encoder_layers"]
    cfg.MODEL.MASK_FORMER.HIDDEN_DIM = values["hidden_dim"]
    cfg.MODEL.MASK_FORMER.NHEADS = values["num_attention_heads"]
    cfg.MODEL.MASK_FORMER.DIM_FEEDFORWARD = values["dim_feedforward"]
    cfg.MODEL.MASK_FORMER.DEC_LAYERS = values["decoder_layers"]
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = values["num_queries"]
    cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = values["train_num_points"]
    # The original fixes the deformable encoder's FFN at 1024, transformers' default too.
    config = Mask2FormerConfig(**dict(values, encoder_feedforward_dim=1024))
    return cfg, config


def test_yaml_and_transformers_doors_give_the_same_kwargs():
    cfg, config = _equivalent_yaml_cfg(num_labels=6)
    hf_cfg = adapter.to_cfg(config)
    image = ShapeSpec(channels=3)
    assert D2SwinTransformer.from_config(hf_cfg, image) == D2SwinTransformer.from_config(cfg, image)
    shape = build_backbone(cfg).output_shape()
    assert MSDeformAttnPixelDecoder.from_config(
        hf_cfg, shape
    ) == MSDeformAttnPixelDecoder.from_config(cfg, shape)
    assert MultiScaleMaskedTransformerDecoder.from_config(
        hf_cfg, 32, True
    ) == MultiScaleMaskedTransformerDecoder.from_config(cfg, 32, True)
    yaml_model = build_model(cfg)
    hf_model = Mask2FormerForUniversalSegmentation(config)
    # The criterion's repr lists every setting: weights, matcher costs, points, eos_coef.
    assert repr(hf_model.criterion) == repr(yaml_model.criterion)
    assert hf_model.criterion.weight_dict == yaml_model.criterion.weight_dict


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_loss_weights_follow_the_config_once(deep_supervision):
    config = Mask2FormerConfig(
        **tiny_config_dict(3, mask_weight=7.0, use_auxiliary_loss=deep_supervision)
    )
    weights = Mask2FormerForUniversalSegmentation(config).criterion.weight_dict
    final = {"loss_ce": 2.0, "loss_mask": 7.0, "loss_dice": 5.0}
    # decoder_layers=4 counts the initial prediction: 3 layers, 3 earlier predictions.
    aux = {f"{k}_{i}": v for i in range(3) for k, v in final.items()}
    assert weights == (final | aux if deep_supervision else final)


def test_transformers_names_map_onto_the_yaml_door_model():
    transformers = require_package("transformers")
    cfg, _ = _equivalent_yaml_cfg(num_labels=3)
    yaml_model = build_model(cfg)
    config = transformers.Mask2FormerConfig(**tiny_config_dict(3, encoder_feedforward_dim=1024))
    theirs = transformers.Mask2FormerForUniversalSegmentation(config)
    mapped = hf_to_original(theirs.state_dict())
    expected = yaml_model.state_dict()
    assert sorted(mapped) == sorted(expected)
    for name, tensor in expected.items():
        assert mapped[name].shape == tensor.shape, name
    incompatible = yaml_model.load_state_dict(mapped, strict=True)
    assert incompatible.missing_keys == [] and incompatible.unexpected_keys == []
    # The values, not just the names, must land: every tensor is the one transformers holds.
    for name, tensor in yaml_model.state_dict().items():
        assert torch.equal(tensor, mapped[name]), name


def test_mapping_round_trips_and_splits_fused_projections():
    transformers = require_package("transformers")
    torch.manual_seed(0)
    model = transformers.Mask2FormerForUniversalSegmentation(
        transformers.Mask2FormerConfig(**tiny_config_dict(2))
    )
    live = model.state_dict()
    original = hf_to_original(live)
    qkv = original["backbone.layers.0.blocks.0.attn.qkv.weight"]
    prefix = "model.pixel_level_module.encoder.swin.encoder.layers.0.blocks.0.attention."
    assert torch.equal(qkv[: qkv.shape[1]], live[prefix + "q_proj.weight"])
    assert torch.equal(qkv[-qkv.shape[1] :], live[prefix + "v_proj.weight"])
    disk = original_to_hf(original)
    assert hf_to_original(disk).keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(hf_to_original(disk)[name], tensor), name
    base = original_to_hf(original, with_class_predictor=False)
    assert not any(k.startswith(("model.", "class_predictor", "criterion")) for k in base)
    with pytest.raises(KeyError, match="no mapping"):
        hf_to_original({"model.something.else": torch.zeros(1)})
    with pytest.raises(KeyError, match="no mapping"):
        original_to_hf({"backbone.res2.0.conv1.weight": torch.zeros(1)})
