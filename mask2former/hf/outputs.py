"""Output dataclasses with transformers' field names; usable as attributes, dict or tuple."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

import torch


class ModelOutput(OrderedDict):
    """Dataclass whose non-None fields are also dict items (``out["loss"]``) and tuple items
    (``out[0]``), like transformers' ``ModelOutput``."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self[k] for k in self.keys())


@dataclass
class Mask2FormerModelOutput(ModelOutput):
    """Outputs of ``Mask2FormerModel``.

    Attributes:
        encoder_last_hidden_state: (B, C5, H/32, W/32) last backbone stage.
        pixel_decoder_last_hidden_state: (B, mask_feature_size, H/4, W/4) mask features.
        transformer_decoder_last_hidden_state: (B, Q, hidden_dim) last decoder layer output.
        encoder_hidden_states: backbone stages, each (B, C_i, H_i, W_i) (on request).
        pixel_decoder_hidden_states: the three multi-scale features, coarse to fine,
            each (B, feature_size, H_l, W_l) (on request).
        transformer_decoder_hidden_states: decoder input then every layer's output, each
            (Q, B, hidden_dim) (on request).
        transformer_decoder_intermediate_states: the normalised queries behind every
            prediction, each (Q, B, hidden_dim) (on request).
        masks_queries_logits: every mask prediction, each (B, Q, H/4, W/4).
        attentions: not provided (always None).
    """

    encoder_last_hidden_state: torch.Tensor | None = None
    pixel_decoder_last_hidden_state: torch.Tensor | None = None
    transformer_decoder_last_hidden_state: torch.Tensor | None = None
    encoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    pixel_decoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    transformer_decoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    transformer_decoder_intermediate_states: tuple[torch.Tensor, ...] | None = None
    masks_queries_logits: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class Mask2FormerForUniversalSegmentationOutput(ModelOutput):
    """Outputs of ``Mask2FormerForUniversalSegmentation``.

    Attributes:
        loss: scalar weighted loss, when labels are given.
        class_queries_logits: (B, Q, num_labels + 1), last prediction ("no object" last).
        masks_queries_logits: (B, Q, H/4, W/4), last prediction.
        auxiliary_logits: earlier predictions, dicts with the two keys above (on request).
        encoder_last_hidden_state, pixel_decoder_last_hidden_state,
        transformer_decoder_last_hidden_state, encoder_hidden_states,
        pixel_decoder_hidden_states, transformer_decoder_hidden_states: as in
            ``Mask2FormerModelOutput``.
        attentions: not provided (always None).
    """

    loss: torch.Tensor | None = None
    class_queries_logits: torch.Tensor | None = None
    masks_queries_logits: torch.Tensor | None = None
    auxiliary_logits: list[dict[str, torch.Tensor]] | None = None
    encoder_last_hidden_state: torch.Tensor | None = None
    pixel_decoder_last_hidden_state: torch.Tensor | None = None
    transformer_decoder_last_hidden_state: torch.Tensor | None = None
    encoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    pixel_decoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    transformer_decoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
