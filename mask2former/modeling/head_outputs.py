"""Typed outputs of the masked-attention decoder and of ``MaskFormerHead``.

Both doors read these: the detectron2 door (meta-architecture, criterion, test-time
augmentation, export) through their read-only dict view with the original's keys
``pred_logits``, ``pred_masks`` and ``aux_outputs``; the transformers door through the
attributes, including the intermediate states a caller asks for with
``output_hidden_states=True``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

# The entries of the original's prediction dict, in its order.
PREDICTION_KEYS = ("pred_logits", "pred_masks", "aux_outputs")


class _PredictionDictView(Mapping):
    """Read-only ``Mapping`` over ``PREDICTION_KEYS``, read from the attributes."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key not in PREDICTION_KEYS:
            raise KeyError(
                f"{type(self).__name__} has no entry {key!r}; entries: {list(PREDICTION_KEYS)} "
                "(other outputs are attributes)"
            )
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(PREDICTION_KEYS)

    def __len__(self) -> int:
        return len(PREDICTION_KEYS)


@dataclass(frozen=True, eq=False)
class MaskDecoderOutput(_PredictionDictView):
    """Predictions of the masked-attention decoder.

    Attributes:
        pred_logits: (B, Q, K + 1) class logits of the last prediction ("no object" last).
        pred_masks: (B, Q, H_m, W_m) mask logits of the last prediction.
        aux_outputs: every earlier prediction, first (from the learnable queries) to last, as
            dicts {"pred_logits", "pred_masks"} (the criterion's format); in eval mode
            without ``output_aux_masks``, {"pred_logits"} only (the masks are not computed).
        last_hidden_state: (B, Q, C) output of the last decoder layer before the final
            LayerNorm (the learnable queries when there is no layer).
        hidden_states: on request: the learnable queries, then every layer's output, each
            (Q, B, C) before the final LayerNorm; else None.
        query_states: on request: the normalised queries behind every prediction, each
            (B, Q, C), first to last; else None.
    """

    pred_logits: torch.Tensor
    pred_masks: torch.Tensor
    aux_outputs: list[dict[str, torch.Tensor]]
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    query_states: tuple[torch.Tensor, ...] | None = None


@dataclass(frozen=True, eq=False)
class MaskFormerHeadOutput(_PredictionDictView):
    """Output of ``MaskFormerHead``: the decoder's predictions and what they were made from.

    Attributes:
        decoder: the transformer decoder's output.
        mask_features: (B, mask_dim, H/4, W/4) per-pixel embeddings of the pixel decoder.
        multi_scale_features: on request: the pixel decoder's three levels read by the
            decoder, coarse to fine, each (B, conv_dim, H_l, W_l); else None.
    """

    decoder: MaskDecoderOutput
    mask_features: torch.Tensor
    multi_scale_features: tuple[torch.Tensor, ...] | None = None

    @property
    def pred_logits(self) -> torch.Tensor:
        return self.decoder.pred_logits

    @property
    def pred_masks(self) -> torch.Tensor:
        return self.decoder.pred_masks

    @property
    def aux_outputs(self) -> list[dict[str, torch.Tensor]]:
        return self.decoder.aux_outputs
