"""``MaskFormerHead``: pixel decoder + transformer decoder (``sem_seg_head`` in checkpoints)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from mask2former.config.configurable import configurable
from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.head_outputs import MaskFormerHeadOutput
from mask2former.modeling.pixel_decoder import build_pixel_decoder
from mask2former.modeling.registry import SEM_SEG_HEADS_REGISTRY, get_from_registry
from mask2former.modeling.transformer_decoder import build_transformer_decoder

logger = logging.getLogger(__name__)

# The only input the masked-attention decoder takes: the pixel decoder's three scales.
MULTI_SCALE_PIXEL_DECODER = "multi_scale_pixel_decoder"

# Keys the original defines (and partly reads) that change nothing in Mask2Former: key ->
# (default, what decides instead). A non-default value is reported, never silently dropped.
INERT_KEYS: dict[str, tuple[Any, str]] = {
    "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT": (
        1.0,
        "the losses are weighted by MODEL.MASK_FORMER.CLASS_WEIGHT, MASK_WEIGHT and DICE_WEIGHT",
    ),
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS": (
        8,
        "the deformable encoder has MODEL.MASK_FORMER.NHEADS heads",
    ),
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS": (
        4,
        "the deformable encoder samples 4 points per head and level",
    ),
    "MODEL.MASK_FORMER.ENC_LAYERS": (
        0,
        "only MaskFormer's decoder has encoder layers; the pixel decoder's are "
        "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS",
    ),
    **{
        f"MODEL.SEM_SEG_HEAD.{name}": (default, "a DeepLab key; Mask2Former has no such head")
        for name, default in (
            ("LOSS_TYPE", "hard_pixel_mining"),
            ("PROJECT_FEATURES", ["res2"]),
            ("PROJECT_CHANNELS", [48]),
            ("ASPP_CHANNELS", 256),
            ("ASPP_DILATIONS", [6, 12, 18]),
            ("ASPP_DROPOUT", 0.1),
            ("USE_DEPTHWISE_SEPARABLE_CONV", False),
        )
    },
}


def warn_inert_keys(cfg) -> list[str]:
    """Log a warning for every ``INERT_KEYS`` entry set to a non-default value.

    Returns:
        the keys warned about.
    """
    changed = []
    for key, (default, reason) in INERT_KEYS.items():
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if _as_plain(value) != _as_plain(default):
            logger.warning("%s=%r has no effect in Mask2Former: %s", key, value, reason)
            changed.append(key)
    return changed


def _as_plain(value: Any) -> Any:
    """Tuples as lists: YAML and the command line give either."""
    if isinstance(value, (list, tuple)):
        return [_as_plain(item) for item in value]
    return value


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
        transformer_predictor: nn.Module,
        transformer_in_feature: str,
    ) -> None:
        """
        Args:
            input_shape: channels and stride of the input features.
            num_classes: number of classes.
            pixel_decoder: module with ``forward_features`` (see ``build_pixel_decoder``).
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
        self.pixel_decoder = pixel_decoder
        self.predictor = transformer_predictor
        self.transformer_in_feature = transformer_in_feature
        self.num_classes = num_classes

    @classmethod
    def from_config(cls, cfg, input_shape: dict[str, ShapeSpec]) -> dict:
        warn_inert_keys(cfg)
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "num_classes": head.NUM_CLASSES,
            "pixel_decoder": build_pixel_decoder(cfg, input_shape),
            "transformer_in_feature": cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE,
            # the pixel decoder's multi-scale outputs have CONVS_DIM channels
            "transformer_predictor": build_transformer_decoder(
                cfg, head.CONVS_DIM, mask_classification=True
            ),
        }

    @property
    def num_aux_outputs(self) -> int:
        """How many earlier predictions ``aux_outputs`` holds (the criterion weighs each)."""
        return self.predictor.num_aux_outputs

    def forward(
        self,
        features: dict[str, torch.Tensor],
        mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_aux_masks: bool = False,
    ) -> MaskFormerHeadOutput:
        """Predict class and mask logits.

        Args:
            features: backbone features, name -> (B, C_name, H_name, W_name).
            mask: unused padding mask, passed on to the predictor (which ignores it).
            output_hidden_states: also return the pixel decoder's multi-scale features and
                the decoder's intermediate states.
            output_aux_masks: in eval mode, also compute the earlier predictions' mask
                logits (``aux_outputs[i]["pred_masks"]``; training mode always does).

        Returns:
            the predictions (a dict view gives ``pred_logits`` (B, Q, K+1), ``pred_masks``
            (B, Q, H/4, W/4) and ``aux_outputs``) with the mask features they came from.
        """
        mask_features, _, multi_scale_features = self.pixel_decoder.forward_features(features)
        decoder_output = self.predictor(
            multi_scale_features,
            mask_features,
            mask,
            output_hidden_states=output_hidden_states,
            output_aux_masks=output_aux_masks,
        )
        return MaskFormerHeadOutput(
            decoder=decoder_output,
            mask_features=mask_features,
            multi_scale_features=tuple(multi_scale_features) if output_hidden_states else None,
        )
