"""``Mask2FormerModel`` and ``Mask2FormerForUniversalSegmentation`` with transformers' API.

Both are thin wrappers around the shared model core (``D2SwinTransformer`` ->
``MSDeformAttnPixelDecoder`` -> ``MultiScaleMaskedTransformerDecoder``, ``SetCriterion``)
built from a ``Mask2FormerConfig`` through ``hf.adapter``. Parameters keep the original
names in memory; ``save_pretrained`` / ``from_pretrained`` translate to and from
transformers' names with ``hf.name_mapping``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from mask2former.hf import adapter
from mask2former.hf.checkpoint_io import (
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    PretrainedLoadOptions,
    load_weights_dir,
    require_safetensors,
    resolve_pretrained_dir,
    save_safetensors,
)
from mask2former.hf.configuration import Mask2FormerConfig
from mask2former.hf.name_mapping import hf_to_original, original_to_hf
from mask2former.hf.outputs import (
    Mask2FormerForUniversalSegmentationOutput,
    Mask2FormerModelOutput,
)
from mask2former.modeling.backbone.swin import D2SwinTransformer
from mask2former.modeling.criterion import SetCriterion
from mask2former.modeling.heads.mask_former_head import MaskFormerHead
from mask2former.modeling.matcher import HungarianMatcher
from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder

logger = logging.getLogger(__name__)


class Mask2FormerPreTrainedModel(nn.Module):
    """Config handling and ``save_pretrained`` / ``from_pretrained`` in transformers' layout."""

    config_class = Mask2FormerConfig
    main_input_name = "pixel_values"
    _has_class_predictor = False

    def __init__(self, config: Mask2FormerConfig) -> None:
        super().__init__()
        if not isinstance(config, Mask2FormerConfig):
            raise TypeError(
                f"config: expected a mask2former Mask2FormerConfig, got {type(config).__name__} "
                "(convert a transformers config with Mask2FormerConfig.from_dict(c.to_dict()))"
            )
        self.config = config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def original_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict with the original Mask2Former (detectron2) parameter names."""
        raise NotImplementedError

    def load_original_state_dict(
        self, state_dict: dict[str, torch.Tensor], ignore_mismatched_sizes: bool = False
    ) -> None:
        """Load original-named weights; logs missing / unused names.

        Raises:
            ValueError: a shape differs (naming it), unless ``ignore_mismatched_sizes``.
        """
        raise NotImplementedError

    def _load_into(
        self,
        module: nn.Module,
        state_dict: dict[str, torch.Tensor],
        ignore_mismatched_sizes: bool,
    ) -> None:
        own = module.state_dict()
        usable = {}
        for name, tensor in state_dict.items():
            if name in own and own[name].shape != tensor.shape:
                message = (
                    f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape "
                    f"{tuple(own[name].shape)} (config.num_labels={self.config.num_labels})"
                )
                if not ignore_mismatched_sizes:
                    raise ValueError(message + "; pass ignore_mismatched_sizes=True to skip it")
                logger.warning("%s: left at its initial value", message)
                continue
            usable[name] = tensor
        result = module.load_state_dict(usable, strict=False)
        if result.missing_keys:
            logger.warning(
                "weights not in the checkpoint (newly initialised): %s", result.missing_keys
            )
        if result.unexpected_keys:
            logger.info("checkpoint weights not used: %s", result.unexpected_keys)

    def save_pretrained(
        self, save_directory: str | os.PathLike, safe_serialization: bool = True
    ) -> None:
        """Write ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) with
        transformers' parameter names.

        Raises:
            ImportError: before writing anything, when ``safe_serialization`` and the
                ``safetensors`` package is missing (as transformers).
        """
        if safe_serialization:
            require_safetensors()
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {save_directory} is a file, expected a directory")
        os.makedirs(save_directory, exist_ok=True)
        self.config.save_pretrained(save_directory)
        state_dict = original_to_hf(
            self.original_state_dict(), with_class_predictor=self._has_class_predictor
        )
        if safe_serialization:
            save_safetensors(state_dict, os.path.join(save_directory, SAFE_WEIGHTS_NAME))
        else:
            torch.save(state_dict, os.path.join(save_directory, WEIGHTS_NAME))

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        config: Mask2FormerConfig | None = None,
        ignore_mismatched_sizes: bool = False,
        **config_overrides: Any,
    ) -> Mask2FormerPreTrainedModel:
        """Load a ``save_pretrained`` directory (ours or transformers') or a Hub model id, in
        eval mode.

        Args:
            pretrained_model_name_or_path: local directory, or a Hub id ("org/name") read
                through ``huggingface_hub`` and its cache (``HF_HUB_OFFLINE=1`` works with a
                populated cache).
            config: use this config instead of the directory's ``config.json``.
            ignore_mismatched_sizes: skip weights whose shape differs (e.g. a new
                ``num_labels``) instead of raising.
            **config_overrides: config fields to change, e.g. ``num_labels=5``; and the
                loading keywords of transformers: ``torch_dtype`` / ``dtype`` (torch.dtype,
                its name or "auto"), ``device_map`` (one device: "cpu", "cuda:0",
                ``{"": device}``; splitting maps such as "auto" are refused), ``revision``,
                ``cache_dir``, ``local_files_only``, ``token``, ``force_download``.
        """
        options = PretrainedLoadOptions.pop_from(config_overrides)
        path = resolve_pretrained_dir(pretrained_model_name_or_path, **options.hub_kwargs)
        if config is None:
            config = Mask2FormerConfig.from_pretrained(path, **config_overrides)
        elif config_overrides:
            raise ValueError(
                f"pass either config or config overrides, got {sorted(config_overrides)}"
            )
        model = cls(config)
        weights = load_weights_dir(path)
        original = hf_to_original(weights)
        model.load_original_state_dict(original, ignore_mismatched_sizes=ignore_mismatched_sizes)
        return options.place(model.eval(), options.resolve_dtype(config, weights))


class Mask2FormerModel(Mask2FormerPreTrainedModel):
    """Backbone + pixel decoder + masked-attention decoder, without the class head's outputs.

    Submodules (original names): ``backbone`` (D2SwinTransformer) and ``sem_seg_head``
    (MaskFormerHead with ``pixel_decoder`` and ``predictor``).
    """

    def __init__(self, config: Mask2FormerConfig) -> None:
        super().__init__(config)
        self.backbone = D2SwinTransformer(**adapter.backbone_kwargs(config))
        shape = self.backbone.output_shape()
        self.sem_seg_head = MaskFormerHead(
            **adapter.head_kwargs(config, shape),
            pixel_decoder=MSDeformAttnPixelDecoder(**adapter.pixel_decoder_kwargs(config, shape)),
            transformer_predictor=MultiScaleMaskedTransformerDecoder(
                **adapter.transformer_decoder_kwargs(config)
            ),
        )

    def original_state_dict(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    def load_original_state_dict(
        self, state_dict: dict[str, torch.Tensor], ignore_mismatched_sizes: bool = False
    ) -> None:
        own = {k: v for k, v in state_dict.items() if not k.startswith("criterion.")}
        self._load_into(self, own, ignore_mismatched_sizes)

    def run_core(self, pixel_values: torch.Tensor, output_hidden_states: bool) -> dict[str, Any]:
        """Run the core modules and collect what the transformers outputs need.

        Returns:
            dict with ``features`` (res2..res5), ``mask_features``, ``multi_scale_features``,
            ``predictions`` (the decoder's dict) and ``layer_outputs`` (every decoder layer's
            (Q, B, C) output; only the last one unless ``output_hidden_states``).
        """
        channels = self.backbone.in_chans
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(
                f"pixel_values: expected shape (batch, {channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        features = self.backbone(pixel_values)
        pixel_decoder = self.sem_seg_head.pixel_decoder
        mask_features, _, multi_scale_features = pixel_decoder.forward_features(features)
        predictor = self.sem_seg_head.predictor
        predictions = predictor(multi_scale_features, mask_features)
        layer_outputs = predictions["layer_outputs"]
        if not output_hidden_states:
            layer_outputs = layer_outputs[-1:]
        if not layer_outputs:  # no decoder layer: the queries are the output
            batch = pixel_values.shape[0]
            layer_outputs = [predictor.query_feat.weight.unsqueeze(1).repeat(1, batch, 1)]
        return {
            "features": features,
            "mask_features": mask_features,
            "multi_scale_features": multi_scale_features,
            "predictions": predictions,
            "layer_outputs": layer_outputs,
        }

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Mask2FormerModelOutput | tuple:
        """Args:
        pixel_values: (B, 3, H, W) normalised images.
        pixel_mask: (B, H, W); accepted and unused (padding is not masked, as in the
            original and in transformers).
        output_hidden_states: also return every stage's hidden states.
        output_attentions: not supported (attentions are None).
        return_dict: False returns a tuple of the non-None fields.
        """
        del pixel_mask, output_attentions
        hidden = (
            self.config.output_hidden_states
            if output_hidden_states is None
            else output_hidden_states
        )
        run = self.run_core(pixel_values, bool(hidden))
        output = _model_output(self, run, bool(hidden))
        use_dict = self.config.return_dict if return_dict is None else return_dict
        return output if use_dict else output.to_tuple()


def _model_output(
    model: Mask2FormerModel, run: dict[str, Any], hidden: bool
) -> Mask2FormerModelOutput:
    predictions = run["predictions"]
    features = run["features"]
    names = sorted(features)
    masks = tuple(aux["pred_masks"] for aux in predictions["aux_outputs"])
    states = {}
    if hidden:
        batch = run["mask_features"].shape[0]
        queries = model.sem_seg_head.predictor.query_feat.weight.unsqueeze(1).repeat(1, batch, 1)
        num_layers = len(model.sem_seg_head.predictor.transformer_ffn_layers)
        layer_outputs = run["layer_outputs"] if num_layers else []
        states = {
            "encoder_hidden_states": tuple(features[name] for name in names),
            "pixel_decoder_hidden_states": tuple(run["multi_scale_features"]),
            "transformer_decoder_hidden_states": (queries, *layer_outputs),
            "transformer_decoder_intermediate_states": tuple(
                state.transpose(0, 1) for state in predictions["query_states"]
            ),
        }
    # Built in one step: the tuple view follows the field order only then.
    return Mask2FormerModelOutput(
        encoder_last_hidden_state=features[names[-1]],
        pixel_decoder_last_hidden_state=run["mask_features"],
        transformer_decoder_last_hidden_state=run["layer_outputs"][-1].transpose(0, 1),
        masks_queries_logits=masks + (predictions["pred_masks"],),
        **states,
    )


class Mask2FormerForUniversalSegmentation(Mask2FormerPreTrainedModel):
    """Mask2Former with class predictions and, given labels, the training loss.

    Submodules: ``model`` (Mask2FormerModel) and ``criterion`` (SetCriterion with a
    HungarianMatcher).
    """

    _has_class_predictor = True

    def __init__(self, config: Mask2FormerConfig) -> None:
        super().__init__(config)
        self.model = Mask2FormerModel(config)
        self.criterion = SetCriterion(
            matcher=HungarianMatcher(**adapter.matcher_kwargs(config)),
            **adapter.criterion_kwargs(config),
        )

    def original_state_dict(self) -> dict[str, torch.Tensor]:
        state_dict = dict(self.model.state_dict())
        state_dict.update({f"criterion.{k}": v for k, v in self.criterion.state_dict().items()})
        return state_dict

    def load_original_state_dict(
        self, state_dict: dict[str, torch.Tensor], ignore_mismatched_sizes: bool = False
    ) -> None:
        renamed = {
            (k if k.startswith("criterion.") else f"model.{k}"): v for k, v in state_dict.items()
        }
        self._load_into(self, renamed, ignore_mismatched_sizes)

    def forward(
        self,
        pixel_values: torch.Tensor,
        mask_labels: list[torch.Tensor] | None = None,
        class_labels: list[torch.Tensor] | None = None,
        pixel_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_auxiliary_logits: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Mask2FormerForUniversalSegmentationOutput | tuple:
        """Args:
        pixel_values: (B, 3, H, W) normalised images.
        mask_labels: per image (N_i, H, W) binary target masks (at the input size).
        class_labels: per image (N_i,) int64 class ids of those masks.
        pixel_mask: (B, H, W); accepted and unused (as in transformers).
        output_hidden_states: also return every stage's hidden states.
        output_auxiliary_logits: return the earlier layers' predictions
            (default ``config.output_auxiliary_logits``).
        output_attentions: not supported (attentions are None).
        return_dict: False returns a tuple of the non-None fields.
        """
        del pixel_mask, output_attentions
        hidden = (
            self.config.output_hidden_states
            if output_hidden_states is None
            else output_hidden_states
        )
        run = self.model.run_core(pixel_values, bool(hidden))
        predictions = run["predictions"]
        base = _model_output(self.model, run, bool(hidden))

        loss = None
        if (mask_labels is None) != (class_labels is None):
            raise ValueError(
                "pass both mask_labels and class_labels to compute the loss, or neither"
            )
        if mask_labels is not None:
            loss = self.compute_loss(predictions, mask_labels, class_labels)
        aux = (
            self.config.output_auxiliary_logits
            if output_auxiliary_logits is None
            else output_auxiliary_logits
        )
        auxiliary_logits = None
        if aux:
            auxiliary_logits = [
                {"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
                for a in predictions["aux_outputs"]
            ]
        output = Mask2FormerForUniversalSegmentationOutput(
            loss=loss,
            class_queries_logits=predictions["pred_logits"],
            masks_queries_logits=predictions["pred_masks"],
            auxiliary_logits=auxiliary_logits,
            encoder_last_hidden_state=base.encoder_last_hidden_state,
            pixel_decoder_last_hidden_state=base.pixel_decoder_last_hidden_state,
            transformer_decoder_last_hidden_state=base.transformer_decoder_last_hidden_state,
            encoder_hidden_states=base.encoder_hidden_states,
            pixel_decoder_hidden_states=base.pixel_decoder_hidden_states,
            transformer_decoder_hidden_states=base.transformer_decoder_hidden_states,
        )
        use_dict = self.config.return_dict if return_dict is None else return_dict
        return output if use_dict else output.to_tuple()

    def compute_loss(
        self,
        predictions: dict[str, Any],
        mask_labels: list[torch.Tensor],
        class_labels: list[torch.Tensor],
    ) -> torch.Tensor:
        """Weighted sum of the criterion's losses (final and, if enabled, auxiliary).

        Args:
            predictions: the decoder's dict (pred_logits, pred_masks, aux_outputs).
            mask_labels: per image (N_i, H, W) target masks.
            class_labels: per image (N_i,) target classes.
        """
        if (
            len(mask_labels) != len(class_labels)
            or len(mask_labels) != predictions["pred_logits"].shape[0]
        ):
            raise ValueError(
                f"mask_labels ({len(mask_labels)}) and class_labels ({len(class_labels)}) need one "
                f"entry per image ({predictions['pred_logits'].shape[0]})"
            )
        targets = [
            {"labels": labels.to(torch.int64), "masks": masks}
            for masks, labels in zip(mask_labels, class_labels)
        ]
        losses = self.criterion(predictions, targets)
        weights = self.criterion.weight_dict
        return sum(loss * weights[name] for name, loss in losses.items() if name in weights)
