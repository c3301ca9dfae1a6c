"""``Mask2FormerConfig`` -> the constructor kwargs of the shared model core.

The YAML door's ``from_config`` classmethods and these functions produce the same keyword
arguments for equivalent configurations (tested), so both doors build the same modules.
Settings transformers has but the original modules cannot express raise a ``ValueError``
naming the config field.
"""

from __future__ import annotations

import logging
from typing import Any

from mask2former.hf.configuration import Mask2FormerConfig
from mask2former.layers.shape_spec import ShapeSpec

logger = logging.getLogger(__name__)

# Mask2Former's masked-attention decoder reads the pixel decoder's output through this name.
_MULTI_SCALE_PIXEL_DECODER = "multi_scale_pixel_decoder"
_STAGE_TO_FEATURE = {f"stage{i}": f"res{i + 1}" for i in range(1, 5)}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def backbone_kwargs(config: Mask2FormerConfig) -> dict[str, Any]:
    """``D2SwinTransformer`` kwargs from ``config.backbone_config``."""
    swin = config.backbone_config
    _require(
        swin.hidden_act == "gelu",
        f"backbone_config.hidden_act={swin.hidden_act!r}: only 'gelu' is supported",
    )
    _require(
        swin.layer_norm_eps == 1e-5,
        f"backbone_config.layer_norm_eps={swin.layer_norm_eps}: only 1e-5 is supported",
    )
    _require(
        not swin.use_absolute_embeddings,
        "backbone_config.use_absolute_embeddings=True is not supported (transformers' absolute "
        "embedding differs from the original Swin's)",
    )
    _require(
        len(swin.depths) == 4 and list(swin.out_features) == list(_STAGE_TO_FEATURE),
        f"backbone_config: Mask2Former needs 4 stages and out_features {list(_STAGE_TO_FEATURE)}, "
        f"got depths {swin.depths} and out_features {swin.out_features}",
    )
    return {
        "pretrain_img_size": swin.image_size,
        "patch_size": swin.patch_size,
        "in_chans": swin.num_channels,
        "embed_dim": swin.embed_dim,
        "depths": list(swin.depths),
        "num_heads": list(swin.num_heads),
        "window_size": swin.window_size,
        "mlp_ratio": swin.mlp_ratio,
        "qkv_bias": swin.qkv_bias,
        "qk_scale": None,
        "drop_rate": swin.hidden_dropout_prob,
        "attn_drop_rate": swin.attention_probs_dropout_prob,
        "drop_path_rate": swin.drop_path_rate,
        "ape": False,
        "patch_norm": True,
        "out_features": [_STAGE_TO_FEATURE[name] for name in swin.out_features],
        "use_checkpoint": False,
    }


def pixel_decoder_kwargs(
    config: Mask2FormerConfig, input_shape: dict[str, ShapeSpec]
) -> dict[str, Any]:
    """``MSDeformAttnPixelDecoder`` kwargs; ``input_shape`` is the backbone's output shape."""
    _require(
        config.activation_function == "relu",
        f"activation_function={config.activation_function!r}: only 'relu' is supported",
    )
    strides = [input_shape[name].stride for name in sorted(input_shape)]
    _require(
        list(config.feature_strides) == strides,
        f"feature_strides={config.feature_strides} differ from the backbone's strides {strides}",
    )
    return {
        "input_shape": dict(input_shape),
        "transformer_dropout": config.dropout,
        "transformer_nheads": config.num_attention_heads,
        "transformer_dim_feedforward": config.encoder_feedforward_dim,
        "transformer_enc_layers": config.encoder_layers,
        "conv_dim": config.feature_size,
        "mask_dim": config.mask_feature_size,
        "norm": "GN",
        "transformer_in_features": ["res3", "res4", "res5"],
        "common_stride": config.common_stride,
    }


def transformer_decoder_kwargs(config: Mask2FormerConfig) -> dict[str, Any]:
    """``MultiScaleMaskedTransformerDecoder`` kwargs (it reads the pixel decoder's
    ``feature_size`` channels; ``decoder_layers`` counts the initial prediction)."""
    _require(
        config.decoder_layers >= 1, f"decoder_layers must be >= 1, got {config.decoder_layers}"
    )
    if config.dropout:
        logger.warning(
            "dropout=%s applies to the pixel decoder only: the masked-attention decoder has no "
            "dropout (as in the original), unlike transformers' which also drops layers",
            config.dropout,
        )
    return {
        "in_channels": config.feature_size,
        "mask_classification": True,
        "num_classes": config.num_labels,
        "hidden_dim": config.hidden_dim,
        "num_queries": config.num_queries,
        "nheads": config.num_attention_heads,
        "dim_feedforward": config.dim_feedforward,
        "dec_layers": config.decoder_layers - 1,
        "pre_norm": config.pre_norm,
        "mask_dim": config.mask_feature_size,
        "enforce_input_project": config.enforce_input_projection,
    }


def head_kwargs(config: Mask2FormerConfig, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
    """``MaskFormerHead`` kwargs without its two submodules."""
    return {
        "input_shape": dict(input_shape),
        "num_classes": config.num_labels,
        "loss_weight": 1.0,
        "ignore_value": config.ignore_value,
        "transformer_in_feature": _MULTI_SCALE_PIXEL_DECODER,
    }


def matcher_kwargs(config: Mask2FormerConfig) -> dict[str, Any]:
    """``HungarianMatcher`` kwargs."""
    return {
        "cost_class": config.class_weight,
        "cost_mask": config.mask_weight,
        "cost_dice": config.dice_weight,
        "num_points": config.train_num_points,
    }


def criterion_kwargs(config: Mask2FormerConfig) -> dict[str, Any]:
    """``SetCriterion`` kwargs without the matcher. Auxiliary losses follow
    ``use_auxiliary_loss`` (the original's DEEP_SUPERVISION)."""
    weight_dict = {
        "loss_ce": config.class_weight,
        "loss_mask": config.mask_weight,
        "loss_dice": config.dice_weight,
    }
    if config.use_auxiliary_loss:
        weight_dict.update(
            {
                f"{name}_{i}": weight
                for i in range(config.decoder_layers - 1)
                for name, weight in list(weight_dict.items())
            }
        )
    return {
        "num_classes": config.num_labels,
        "weight_dict": weight_dict,
        "eos_coef": config.no_object_weight,
        "losses": ["labels", "masks"],
        "num_points": config.train_num_points,
        "oversample_ratio": config.oversample_ratio,
        "importance_sample_ratio": config.importance_sample_ratio,
    }
