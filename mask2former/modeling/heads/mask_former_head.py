"""``MaskFormerHead``: pixel decoder + transformer decoder (``sem_seg_head`` in checkpoints)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from mask2former.config.configurable import configurable
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.pixel_decoder import build_pixel_decoder
from mask2former.modeling.registry import SEM_SEG_HEADS_REGISTRY, get_from_registry
from mask2former.modeling.transformer_decoder import build_transformer_decoder

logger = logging.getLogger(__name__)

# The only input the masked-attention decoder takes: the pixel decoder's three scales.
MULTI_SCALE_PIXEL_DECODER = "multi_scale_pixel_decoder"


def build_sem_seg_head(cfg, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """Build ``cfg.MODEL.SEM_SEG_HEAD.NAME`` from the backbone's output shapes."""
    name = cfg.MODEL.SEM_SEG_HEAD.NAME
    head_cls = get_from_registry(SEM_SEG_HEADS_REGISTRY, name, "MODEL.SEM_SEG_HEAD.NAME")
    return head_cls(cfg, input_shape)


@SEM_SEG_HEADS_REGISTRY.register()
class MaskFormerHead(nn.Module):
    """Runs ``pixel_decoder`` on backbone features and ``predictor`` on its multi-scale output."""

    # The original's state-dict version: its checkpoints (and ours) carry it in ``_metadata``,
    # and the original converts checkpoints without it as below.
    _version = 2

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            # Version-1 checkpoints kept the pixel decoder's weights directly under the head.
            # Unlike the original, keys already under pixel_decoder. stay put, so that a state
            # dict without metadata in today's format (a .pkl, a converted one) loads as is.
            current = (prefix + "pixel_decoder.", prefix + "predictor.")
            renamed = [k for k in state_dict if k.startswith(prefix) and not k.startswith(current)]
            for key in renamed:
                new_key = prefix + "pixel_decoder." + key[len(prefix) :]
                state_dict[new_key] = state_dict.pop(key)
            if renamed:
                logger.warning(
                    "Moved %d keys of an old-format checkpoint under %spixel_decoder.",
                    len(renamed),
                    prefix,
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        num_classes: int,
        pixel_decoder: nn.Module,
        loss_weight: float = 1.0,
        ignore_value: int = -1,
        transformer_predictor: nn.Module,
        transformer_in_feature: str,
    ) -> None:
        """
        Args:
            input_shape: channels and stride of the input features.
            num_classes: number of classes.
            pixel_decoder: module with ``forward_features`` (see ``build_pixel_decoder``).
            loss_weight: weight of this head's losses.
            ignore_value: label ignored in training targets.
            transformer_predictor: the transformer decoder making the predictions.
            transformer_in_feature: what the predictor reads; only
                "multi_scale_pixel_decoder" (Mask2Former) is supported.
        """
        super().__init__()
        if transformer_in_feature != MULTI_SCALE_PIXEL_DECODER:
            raise ValueError(
                "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE (transformer_in_feature) must be "
                f"{MULTI_SCALE_PIXEL_DECODER!r} for the masked-attention decoder, "
                f"got {transformer_in_feature!r}"
            )
        by_stride = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in by_stride]
        self.ignore_value = ignore_value
        self.common_stride = 4
        self.loss_weight = loss_weight
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor
        self.transformer_in_feature = transformer_in_feature
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]) -> dict:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "loss_weight": head.LOSS_WEIGHT,
            "transformer_in_feature": cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE,
            # the pixel decoder's multi-scale outputs have CONVS_DIM channels
            "transformer_predictor": build_transformer_decoder(
                cfg, head.CONVS_DIM, mask_classification=True
            ),
        }

    def forward(self, features: dict[str, torch.Tensor], mask: torch.Tensor | None = None) -> dict:
        """Predict class and mask logits.

        Args:
            features: backbone features, name -> (B, C, H_name, W_name).
            mask: unused padding mask, passed on to the predictor (which ignores it).

        Returns:
            the predictor's dict: ``pred_logits`` (B, Q, K+1), ``pred_masks``
            (B, Q, H/4, W/4), ``aux_outputs`` and ``query_states``.
        """
        mask_features, _, multi_scale_features = self.pixel_decoder.forward_features(features)
        return self.predictor(multi_scale_features, mask_features, mask)
