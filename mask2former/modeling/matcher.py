"""Hungarian matching of predicted queries to ground-truth masks (Mask2Former's matcher).

The cost of assigning query q to target t is
``cost_class * (-p_q[class_t]) + cost_mask * BCE(q, t) + cost_dice * dice(q, t)``, with the
two mask costs evaluated on one set of random points shared by all masks of an image.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F

from mask2former.layers.point_sample import point_sample


def batch_dice_loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice loss between every prediction and every target.

    Args:
        inputs: (N, P) mask logits.
        targets: (M, P) binary (or soft) targets.

    Returns:
        (N, M) dice losses ``1 - (2|x.y| + 1) / (|x| + |y| + 1)`` with x = sigmoid(inputs).
    """
    probs = inputs.sigmoid().flatten(1)
    numerator = 2 * torch.einsum("nc,mc->nm", probs, targets)
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise mean binary cross-entropy (with logits) between predictions and targets.

    Args:
        inputs: (N, P) mask logits.
        targets: (M, P) binary (or soft) targets.

    Returns:
        (N, M) BCE averaged over the P points.
    """
    num_points = inputs.shape[1]
    loss_if_positive = F.binary_cross_entropy_with_logits(
        inputs, torch.ones_like(inputs), reduction="none"
    )
    loss_if_negative = F.binary_cross_entropy_with_logits(
        inputs, torch.zeros_like(inputs), reduction="none"
    )
    loss = torch.einsum("nc,mc->nm", loss_if_positive, targets) + torch.einsum(
        "nc,mc->nm", loss_if_negative, 1 - targets
    )
    return loss / num_points


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to targets minimising the weighted matching cost.

    Queries left unmatched are supervised as "no object" by the criterion.
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_mask: float = 1.0,
        cost_dice: float = 1.0,
        *,
        num_points: int,
    ) -> None:
        """
        Args:
            cost_class: weight of the classification cost (minus the target class probability).
            cost_mask: weight of the sigmoid BCE mask cost.
            cost_dice: weight of the dice mask cost.
            num_points: number of uniformly random points the mask costs are evaluated on.
        """
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: cost_class, cost_mask and cost_dice are all 0")
        if num_points <= 0:
            raise ValueError(f"HungarianMatcher: num_points must be positive, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, target: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Matching cost of one image.

        Args:
            pred_logits: (Q, K + 1) class logits.
            pred_masks: (Q, H, W) mask logits.
            target: {"labels": (T,) int64, "masks": (T, H_gt, W_gt)}.

        Returns:
            (Q, T) cost matrix on the predictions' device.
        """
        class_probs = pred_logits.softmax(-1)
        target_labels = target["labels"]
        # -p[target class] stands for the NLL (1 - p differs by a constant).
        cost_class = -class_probs[:, target_labels]

        pred_masks = pred_masks[:, None]
        target_masks = target["masks"].to(pred_masks)[:, None]
        # All masks of the image are compared on the same random points.
        point_coords = torch.rand(1, self.num_points, 2, device=pred_masks.device)
        target_points = point_sample(
            target_masks, point_coords.repeat(target_masks.shape[0], 1, 1), align_corners=False
        ).squeeze(1)
        pred_points = point_sample(
            pred_masks, point_coords.repeat(pred_masks.shape[0], 1, 1), align_corners=False
        ).squeeze(1)

        with torch.autocast(device_type=pred_points.device.type, enabled=False):
            pred_points = pred_points.float()
            target_points = target_points.float()
            cost_mask = batch_sigmoid_ce_loss(pred_points, target_points)
            cost_dice = batch_dice_loss(pred_points, target_points)

        cost = (
            self.cost_mask * cost_mask + self.cost_class * cost_class + self.cost_dice * cost_dice
        )
        return cost.reshape(pred_logits.shape[0], -1)

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Match every image of the batch.

        Args:
            outputs: {"pred_logits": (B, Q, K + 1), "pred_masks": (B, Q, H, W)}.
            targets: B dicts {"labels": (T_b,) int64, "masks": (T_b, H_gt, W_gt)}.

        Returns:
            B pairs (query_indices, target_indices), int64 CPU tensors of length min(Q, T_b);
            query indices are increasing.

        Raises:
            FloatingPointError: the predictions (hence the costs) are NaN or infinite.
        """
        batch_size = outputs["pred_logits"].shape[0]
        if len(targets) != batch_size:
            raise ValueError(f"got {len(targets)} targets for a batch of {batch_size} predictions")
        indices = []
        for image_idx, target in enumerate(targets):
            cost = self.cost_matrix(
                outputs["pred_logits"][image_idx], outputs["pred_masks"][image_idx], target
            )
            cost = cost.cpu().numpy()
            if not np.isfinite(cost).all():
                # scipy would only say "matrix contains invalid numeric entries".
                raise FloatingPointError(
                    f"The matching cost of image {image_idx} is NaN or infinite: the model's "
                    "predictions are not finite (pred_logits finite: "
                    f"{bool(outputs['pred_logits'][image_idx].isfinite().all())}, pred_masks "
                    f"finite: {bool(outputs['pred_masks'][image_idx].isfinite().all())})."
                )
            query_idx, target_idx = linear_sum_assignment(cost)
            indices.append(
                (
                    torch.as_tensor(query_idx, dtype=torch.int64),
                    torch.as_tensor(target_idx, dtype=torch.int64),
                )
            )
        return indices

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}"
        )
