"""``Mask2FormerModel`` and ``Mask2FormerForUniversalSegmentation`` with transformers' API.

Both are thin wrappers around the shared model core (``D2SwinTransformer`` ->
``MSDeformAttnPixelDecoder`` -> ``MultiScaleMaskedTransformerDecoder``, ``SetCriterion``),
made by the core's own builders from the config node ``hf.adapter.to_cfg`` translates a
``Mask2FormerConfig`` to; they read the head's typed output. Parameters keep the original
names in memory; ``save_pretrained`` / ``from_pretrained`` translate to and from
transformers' names with ``hf.name_mapping``.
"""

from __future__ import annotations

import contextlib
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
from mask2former.modeling.backbone.build import build_backbone
from mask2former.modeling.criterion import build_criterion
from mask2former.modeling.head_outputs import MaskFormerHeadOutput
from mask2former.modeling.heads.mask_former_head import build_sem_seg_head
from mask2former.utils import cpu_caching

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

    def _setting(self, value: bool | None, name: str) -> bool:
        """A forward argument, or the config's value of the same name when it is None."""
        return bool(getattr(self.config, name) if value is None else value)

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
        # The YAML-door config the modules are built from (read-only).
        self.core_cfg = adapter.to_cfg(config)
        self.backbone = build_backbone(self.core_cfg)
        self.sem_seg_head = build_sem_seg_head(self.core_cfg, self.backbone.output_shape())

    def original_state_dict(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    def load_original_state_dict(
        self, state_dict: dict[str, torch.Tensor], ignore_mismatched_sizes: bool = False
    ) -> None:
        own = {k: v for k, v in state_dict.items() if not k.startswith("criterion.")}
        self._load_into(self, own, ignore_mismatched_sizes)

    def run_core(
        self, pixel_values: torch.Tensor, output_hidden_states: bool, output_aux_masks: bool = True
    ) -> tuple[dict[str, torch.Tensor], MaskFormerHeadOutput]:
        """Run backbone and head.

        Args:
            pixel_values: (B, 3, H, W) normalised images.
            output_hidden_states: also compute the intermediate states.
            output_aux_masks: compute the earlier predictions' mask logits in eval mode too
                (without them the decoder makes its attention masks at low resolution).

        Returns:
            the backbone features (res2..res5) and the head's output (with the intermediate
            states when ``output_hidden_states``).
        """
        channels = self.backbone.in_chans
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(
                f"pixel_values: expected shape (batch, {channels}, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        features = self.backbone(pixel_values)
        head = self.sem_seg_head(
            features, output_hidden_states=output_hidden_states, output_aux_masks=output_aux_masks
        )
        return features, head

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
        hidden = self._setting(output_hidden_states, "output_hidden_states")
        output = _model_output(*self.run_core(pixel_values, hidden))
        return output if self._setting(return_dict, "return_dict") else output.to_tuple()


def _model_output(
    features: dict[str, torch.Tensor], head: MaskFormerHeadOutput, every_mask: bool = True
) -> Mask2FormerModelOutput:
    """transformers' fields from the core's outputs; the hidden states when the head has them;
    ``masks_queries_logits`` (every prediction's masks) only with ``every_mask``."""
    decoder = head.decoder
    names = sorted(features)
    states = {}
    if decoder.hidden_states is not None:
        states = {
            "encoder_hidden_states": tuple(features[name] for name in names),
            "pixel_decoder_hidden_states": head.multi_scale_features,
            "transformer_decoder_hidden_states": decoder.hidden_states,
            "transformer_decoder_intermediate_states": tuple(
                state.transpose(0, 1) for state in decoder.query_states
            ),
        }
    # Built in one step: the tuple view follows the field order only then.
    return Mask2FormerModelOutput(
        encoder_last_hidden_state=features[names[-1]],
        pixel_decoder_last_hidden_state=head.mask_features,
        transformer_decoder_last_hidden_state=decoder.last_hidden_state,
        masks_queries_logits=(
            (*(aux["pred_masks"] for aux in decoder.aux_outputs), decoder.pred_masks)
            if every_mask
            else None
        ),
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
        head = self.model.sem_seg_head
        self.criterion = build_criterion(
            self.model.core_cfg, head.num_classes, num_aux_outputs=head.num_aux_outputs
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
        hidden = self._setting(output_hidden_states, "output_hidden_states")
        auxiliary = self._setting(output_auxiliary_logits, "output_auxiliary_logits")
        # the earlier predictions' masks only for the auxiliary logits and losses
        scope = contextlib.nullcontext() if self.training else cpu_caching.caching(self.device)
        with scope:
            features, head = self.model.run_core(
                pixel_values, hidden, output_aux_masks=auxiliary or mask_labels is not None
            )
        base = _model_output(features, head, every_mask=False)

        loss = None
        if (mask_labels is None) != (class_labels is None):
            raise ValueError(
                "pass both mask_labels and class_labels to compute the loss, or neither"
            )
        if mask_labels is not None:
            loss = self.compute_loss(head, mask_labels, class_labels)
        auxiliary_logits = None
        if auxiliary:
            auxiliary_logits = [
                {"masks_queries_logits": a["pred_masks"], "class_queries_logits": a["pred_logits"]}
                for a in head.aux_outputs
            ]
        output = Mask2FormerForUniversalSegmentationOutput(
            loss=loss,
            class_queries_logits=head.pred_logits,
            masks_queries_logits=head.pred_masks,
            auxiliary_logits=auxiliary_logits,
            encoder_last_hidden_state=base.encoder_last_hidden_state,
            pixel_decoder_last_hidden_state=base.pixel_decoder_last_hidden_state,
            transformer_decoder_last_hidden_state=base.transformer_decoder_last_hidden_state,
            encoder_hidden_states=base.encoder_hidden_states,
            pixel_decoder_hidden_states=base.pixel_decoder_hidden_states,
            transformer_decoder_hidden_states=base.transformer_decoder_hidden_states,
        )
        return output if self._setting(return_dict, "return_dict") else output.to_tuple()

    def compute_loss(
        self,
        predictions: MaskFormerHeadOutput,
        mask_labels: list[torch.Tensor],
        class_labels: list[torch.Tensor],
    ) -> torch.Tensor:
        """Sum of the criterion's weighted losses (final and, if enabled, auxiliary).

        Args:
            predictions: the head's output (pred_logits, pred_masks, aux_outputs).
            mask_labels: per image (N_i, H, W) target masks.
            class_labels: per image (N_i,) target classes.
        """
        batch = predictions.pred_logits.shape[0]
        if len(mask_labels) != len(class_labels) or len(mask_labels) != batch:
            raise ValueError(
                f"mask_labels ({len(mask_labels)}) and class_labels ({len(class_labels)}) need one "
                f"entry per image ({batch})"
            )
        targets = [
            {"labels": labels.to(torch.int64), "masks": masks}
            for masks, labels in zip(mask_labels, class_labels)
        ]
        return sum(self.criterion.weigh(self.criterion(predictions, targets)).values())
