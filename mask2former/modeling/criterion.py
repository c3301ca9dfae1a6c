"""Mask2Former's set criterion: Hungarian matching, then class and point-sampled mask losses.

Losses (per decoder layer when the outputs carry ``aux_outputs``):

* ``loss_ce``: cross-entropy over K + 1 classes for every query; unmatched queries target the
  "no object" class K, whose weight is ``eos_coef``.
* ``loss_mask`` / ``loss_dice``: sigmoid BCE and dice between matched predicted and target
  masks, evaluated on ``num_points`` points per mask chosen by uncertainty-based importance
  sampling (PointRend), normalised by the number of target masks averaged over ranks.

Auxiliary layers' losses get the suffix ``_{i}`` (``loss_ce_0``, ...). The returned losses are
unweighted; ``weight_dict`` holds the weights and ``SetCriterion.weigh`` applies them.
``build_criterion`` is the one place that turns the settings (``MODEL.MASK_FORMER.*``, which
the transformers door's config is translated to) into the weights and the criterion.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mask2former.layers.point_sample import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
)
from mask2former.modeling.matcher import HungarianMatcher
from mask2former.utils import comm

_KNOWN_LOSSES = ("labels", "masks")


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Dice loss summed over masks and divided by ``num_masks``.

    Args:
        inputs: (N, P) mask logits.
        targets: (N, P) binary targets.
        num_masks: normaliser.

    Returns:
        Scalar loss.
    """
    probs = inputs.sigmoid().flatten(1)
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    loss = 1 - (numerator + 1) / (denominator + 1)
    return loss.sum() / num_masks


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Per-mask mean BCE-with-logits, summed over masks and divided by ``num_masks``.

    Args:
        inputs: (N, P) mask logits.
        targets: (N, P) binary targets.
        num_masks: normaliser.

    Returns:
        Scalar loss.
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return loss.mean(1).sum() / num_masks


def _pad_and_stack_matched(
    masks: list[torch.Tensor], target_indices: list[torch.Tensor]
) -> torch.Tensor:
    """Matched target masks of all images, zero-padded to the batch's largest (H, W).

    Args:
        masks: per image (T_b, H_b, W_b) target masks.
        target_indices: per image (M_b,) indices into its targets.

    Returns:
        (sum M_b, H_max, W_max) masks in image order.
    """
    max_h = max(m.shape[-2] for m in masks)
    max_w = max(m.shape[-1] for m in masks)
    matched = []
    for image_masks, idx in zip(masks, target_indices):
        selected = image_masks[idx.to(image_masks.device)]
        padded = selected.new_zeros((selected.shape[0], max_h, max_w))
        padded[:, : selected.shape[-2], : selected.shape[-1]] = selected
        matched.append(padded)
    return torch.cat(matched, dim=0)


class SetCriterion(nn.Module):
    """Losses of a set prediction: match queries to targets, then supervise the pairs."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weight_dict: dict[str, float],
        eos_coef: float,
        losses: list[str],
        num_points: int,
        oversample_ratio: float,
        importance_sample_ratio: float,
    ) -> None:
        """
        Args:
            num_classes: number of categories K, without the "no object" class.
            matcher: assigns queries to targets.
            weight_dict: loss name -> weight (applied by ``weigh``).
            eos_coef: classification weight of the "no object" class.
            losses: subset of ("labels", "masks").
            num_points: points sampled per mask for the mask losses.
            oversample_ratio: candidate points per kept point in importance sampling.
            importance_sample_ratio: fraction of points chosen by uncertainty.
        """
        super().__init__()
        unknown = [name for name in losses if name not in _KNOWN_LOSSES]
        if unknown:
            raise ValueError(f"SetCriterion: unknown losses {unknown}; expected {_KNOWN_LOSSES}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = weight_dict
        self.eos_coef = eos_coef
        self.losses = list(losses)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    def loss_labels(
        self,
        outputs: dict[str, torch.Tensor],
        targets: list[dict[str, torch.Tensor]],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_masks: float,
    ) -> dict[str, torch.Tensor]:
        """Weighted cross-entropy over all queries: {"loss_ce": scalar}."""
        logits = outputs["pred_logits"].float()  # (B, Q, K + 1)
        batch_idx, query_idx = self._query_permutation(indices)
        matched_classes = torch.cat(
            [target["labels"][tgt] for target, (_, tgt) in zip(targets, indices)]
        )
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        target_classes[batch_idx, query_idx] = matched_classes.to(logits.device)
        loss_ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        return {"loss_ce": loss_ce}

    def loss_masks(
        self,
        outputs: dict[str, torch.Tensor],
        targets: list[dict[str, torch.Tensor]],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_masks: float,
    ) -> dict[str, torch.Tensor]:
        """Point-sampled BCE and dice of matched masks: {"loss_mask", "loss_dice"}."""
        batch_idx, query_idx = self._query_permutation(indices)
        pred_masks = outputs["pred_masks"][batch_idx, query_idx]  # (M, H, W)
        target_masks = _pad_and_stack_matched(
            [target["masks"] for target in targets], [tgt for _, tgt in indices]
        ).to(pred_masks)

        # Normalised point coordinates make the prediction and target resolutions irrelevant.
        pred_masks = pred_masks[:, None]
        target_masks = target_masks[:, None]
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                pred_masks,
                calculate_uncertainty,
                self.num_points,
                self.oversample_ratio,
                self.importance_sample_ratio,
            )
            point_labels = point_sample(target_masks, point_coords, align_corners=False).squeeze(1)
        point_logits = point_sample(pred_masks, point_coords, align_corners=False).squeeze(1)
        return {
            "loss_mask": sigmoid_ce_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }

    @staticmethod
    def _query_permutation(
        indices: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch index, query index) of every matched pair, image by image."""
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        query_idx = torch.cat([src for src, _ in indices])
        return batch_idx, query_idx

    def get_loss(
        self,
        loss: str,
        outputs: dict[str, torch.Tensor],
        targets: list[dict[str, torch.Tensor]],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_masks: float,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss group ``loss`` ("labels" or "masks")."""
        if loss == "labels":
            return self.loss_labels(outputs, targets, indices, num_masks)
        if loss == "masks":
            return self.loss_masks(outputs, targets, indices, num_masks)
        raise ValueError(f"unknown loss {loss!r}; expected one of {_KNOWN_LOSSES}")

    def _num_masks(self, targets: list[dict[str, torch.Tensor]], device: torch.device) -> float:
        """Number of target masks per rank, averaged over ranks and at least 1."""
        num_masks = torch.as_tensor(
            [sum(len(t["labels"]) for t in targets)], dtype=torch.float, device=device
        )
        if comm.is_dist_initialized():
            torch.distributed.all_reduce(num_masks)
        return torch.clamp(num_masks / comm.get_world_size(), min=1).item()

    def forward(
        self, outputs: dict, targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Compute every loss for the final and the auxiliary predictions.

        Args:
            outputs: {"pred_logits": (B, Q, K + 1), "pred_masks": (B, Q, H, W),
                optionally "aux_outputs": list of dicts with the same two keys}.
            targets: B dicts {"labels": (T_b,) int64, "masks": (T_b, H_b, W_b)}.

        Returns:
            Unweighted scalar losses, e.g. {"loss_ce", "loss_mask", "loss_dice",
            "loss_ce_0", ...}.
        """
        final_outputs = {k: outputs[k] for k in ("pred_logits", "pred_masks")}
        indices = self.matcher(final_outputs, targets)
        num_masks = self._num_masks(targets, outputs["pred_logits"].device)

        losses: dict[str, torch.Tensor] = {}
        for loss in self.losses:
            losses.update(self.get_loss(loss, final_outputs, targets, indices, num_masks))
        for layer_idx, aux_outputs in enumerate(outputs.get("aux_outputs", [])):
            aux_indices = self.matcher(aux_outputs, targets)
            for loss in self.losses:
                layer_losses = self.get_loss(loss, aux_outputs, targets, aux_indices, num_masks)
                losses.update({f"{k}_{layer_idx}": v for k, v in layer_losses.items()})
        return losses

    def weigh(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The losses times their weights; a loss without a weight is dropped (as in the
        original, e.g. the auxiliary ones without deep supervision)."""
        weights = self.weight_dict
        return {name: loss * weights[name] for name, loss in losses.items() if name in weights}

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, losses={self.losses}, eos_coef={self.eos_coef}, "
            f"num_points={self.num_points}, oversample_ratio={self.oversample_ratio}, "
            f"importance_sample_ratio={self.importance_sample_ratio},\n"
            f"weight_dict={self.weight_dict}"
        )


def build_criterion(cfg, num_classes: int, num_aux_outputs: int) -> SetCriterion:
    """The criterion and its loss weights from ``cfg.MODEL.MASK_FORMER``.

    Args:
        cfg: config node with the MASK_FORMER loss keys (CLASS_WEIGHT, MASK_WEIGHT, ...).
        num_classes: number of categories K.
        num_aux_outputs: earlier predictions the head returns (``head.num_aux_outputs``);
            with DEEP_SUPERVISION each gets the final prediction's weights.
    """
    mf = cfg.MODEL.MASK_FORMER
    matcher = HungarianMatcher(
        cost_class=mf.CLASS_WEIGHT,
        cost_mask=mf.MASK_WEIGHT,
        cost_dice=mf.DICE_WEIGHT,
        num_points=mf.TRAIN_NUM_POINTS,
    )
    weight_dict = {
        "loss_ce": mf.CLASS_WEIGHT,
        "loss_mask": mf.MASK_WEIGHT,
        "loss_dice": mf.DICE_WEIGHT,
    }
    if mf.DEEP_SUPERVISION:
        weight_dict.update(
            {
                f"{name}_{i}": weight
                for i in range(num_aux_outputs)
                for name, weight in list(weight_dict.items())
            }
        )
    return SetCriterion(
        num_classes,
        matcher=matcher,
        weight_dict=weight_dict,
        eos_coef=mf.NO_OBJECT_WEIGHT,
        losses=["labels", "masks"],
        num_points=mf.TRAIN_NUM_POINTS,
        oversample_ratio=mf.OVERSAMPLE_RATIO,
        importance_sample_ratio=mf.IMPORTANCE_SAMPLE_RATIO,
    )
