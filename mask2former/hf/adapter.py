"""``Mask2FormerConfig`` -> the YAML door's config node, so both doors share one set of builders.

``to_cfg`` only renames: every module, the criterion and its loss weights are then made by the
core's own builders (``build_backbone``, ``build_sem_seg_head``, ``build_criterion``) exactly as
for a YAML config. Settings transformers has but the original modules cannot express raise a
``ValueError`` naming the config field.
"""

from __future__ import annotations

import logging

from fvcore.common.config import CfgNode

from mask2former.config import get_cfg
from mask2former.hf.configuration import Mask2FormerConfig

logger = logging.getLogger(__name__)

_STAGE_TO_FEATURE = {f"stage{i}": f"res{i + 1}" for i in range(1, 5)}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_supported(config: Mask2FormerConfig) -> None:
    """Raise for transformers settings the original modules have no equivalent of."""
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
    strides = [swin.patch_size * 2**i for i in range(len(swin.depths))]
    _require(
        list(config.feature_strides) == strides,
        f"feature_strides={config.feature_strides} differ from the backbone's strides {strides} "
        f"(patch_size {swin.patch_size})",
    )
    _require(
        config.activation_function == "relu",
        f"activation_function={config.activation_function!r}: only 'relu' is supported",
    )
    _require(
        config.decoder_layers >= 1, f"decoder_layers must be >= 1, got {config.decoder_layers}"
    )
    if config.dropout:
        logger.warning(
            "dropout=%s applies to the pixel decoder only: the masked-attention decoder has no "
            "dropout (as in the original), unlike transformers' which also drops layers",
            config.dropout,
        )


def to_cfg(config: Mask2FormerConfig) -> CfgNode:
    """The YAML-door config (our defaults, the original's keys) equivalent to ``config``.

    ``decoder_layers`` maps to ``DEC_LAYERS`` unchanged: both count the prediction made from
    the learnable queries. The network gets ``pixel_values`` as they are (the image processor
    normalises), so ``PIXEL_MEAN`` / ``PIXEL_STD`` are 0 / 1.
    """
    _check_supported(config)
    swin = config.backbone_config
    cfg = get_cfg()
    model = cfg.MODEL
    model.META_ARCHITECTURE = "MaskFormer"
    model.WEIGHTS = ""
    model.PIXEL_MEAN = [0.0] * swin.num_channels
    model.PIXEL_STD = [1.0] * swin.num_channels
    model.BACKBONE.NAME = "D2SwinTransformer"
    model.SWIN.PRETRAIN_IMG_SIZE = swin.image_size
    model.SWIN.PATCH_SIZE = swin.patch_size
    model.SWIN.EMBED_DIM = swin.embed_dim
    model.SWIN.DEPTHS = list(swin.depths)
    model.SWIN.NUM_HEADS = list(swin.num_heads)
    model.SWIN.WINDOW_SIZE = swin.window_size
    model.SWIN.MLP_RATIO = swin.mlp_ratio
    model.SWIN.QKV_BIAS = swin.qkv_bias
    model.SWIN.QK_SCALE = None
    model.SWIN.DROP_RATE = swin.hidden_dropout_prob
    model.SWIN.ATTN_DROP_RATE = swin.attention_probs_dropout_prob
    model.SWIN.DROP_PATH_RATE = swin.drop_path_rate
    model.SWIN.APE = False
    model.SWIN.PATCH_NORM = True
    model.SWIN.OUT_FEATURES = [_STAGE_TO_FEATURE[name] for name in swin.out_features]
    model.SWIN.USE_CHECKPOINT = False

    head = model.SEM_SEG_HEAD
    head.NAME = "MaskFormerHead"
    head.IN_FEATURES = list(_STAGE_TO_FEATURE.values())
    head.IGNORE_VALUE = config.ignore_value
    head.NUM_CLASSES = config.num_labels
    head.CONVS_DIM = config.feature_size
    head.MASK_DIM = config.mask_feature_size
    head.COMMON_STRIDE = config.common_stride
    head.NORM = "GN"
    head.PIXEL_DECODER_NAME = "MSDeformAttnPixelDecoder"
    head.TRANSFORMER_ENC_LAYERS = config.encoder_layers
    head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
    head.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = config.encoder_feedforward_dim

    mf = model.MASK_FORMER
    mf.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"
    mf.TRANSFORMER_IN_FEATURE = "multi_scale_pixel_decoder"
    mf.DEEP_SUPERVISION = config.use_auxiliary_loss
    mf.NO_OBJECT_WEIGHT = config.no_object_weight
    mf.CLASS_WEIGHT = config.class_weight
    mf.MASK_WEIGHT = config.mask_weight
    mf.DICE_WEIGHT = config.dice_weight
    mf.HIDDEN_DIM = config.hidden_dim
    mf.NUM_OBJECT_QUERIES = config.num_queries
    mf.NHEADS = config.num_attention_heads
    mf.DROPOUT = config.dropout
    mf.DIM_FEEDFORWARD = config.dim_feedforward
    mf.DEC_LAYERS = config.decoder_layers
    mf.PRE_NORM = config.pre_norm
    mf.ENFORCE_INPUT_PROJ = config.enforce_input_projection
    mf.TRAIN_NUM_POINTS = config.train_num_points
    mf.OVERSAMPLE_RATIO = config.oversample_ratio
    mf.IMPORTANCE_SAMPLE_RATIO = config.importance_sample_ratio
    cfg.freeze()
    return cfg
