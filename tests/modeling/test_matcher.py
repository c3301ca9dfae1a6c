import itertools

import pytest
import torch

from mask2former.modeling.matcher import (
    HungarianMatcher,
    batch_dice_loss,
    batch_sigmoid_ce_loss,
)


class _FixedCostMatcher(HungarianMatcher):
    """Matcher whose cost matrix is given, to test the assignment step alone."""

    def __init__(self, costs):
        super().__init__(num_points=1)
        self.costs = costs

    def cost_matrix(self, pred_logits, pred_masks, target):
        return self.costs.pop(0)


def _outputs(batch, queries):
    return {
        "pred_logits": torch.zeros(batch, queries, 3),
        "pred_masks": torch.zeros(batch, queries, 4, 4),
    }


def _brute_force_min(cost):
    queries, targets = len(cost), len(cost[0])
    return min(
        sum(cost[q][t] for t, q in enumerate(perm))
        for perm in itertools.permutations(range(queries), targets)
    )


def test_hand_made_cost_is_solved_optimally():
    # Greedy (row minimum first) would take (0, 0) = 1 then (1, 1) = 9: total 10.
    # The optimum is (0, 1) + (1, 0) = 2 + 3 = 5; query 2 stays unmatched.
    cost = torch.tensor([[1.0, 2.0], [3.0, 9.0], [8.0, 8.0]])
    matcher = _FixedCostMatcher([cost])
    [(query_idx, target_idx)] = matcher(_outputs(1, 3), [{"labels": torch.zeros(2)}])
    assert query_idx.tolist() == [0, 1]
    assert target_idx.tolist() == [1, 0]
    assert query_idx.dtype == torch.int64 and target_idx.dtype == torch.int64


def test_matches_brute_force_on_random_costs():
    generator = torch.Generator().manual_seed(0)
    for queries, targets in [(3, 2), (4, 4), (5, 3), (6, 1)]:
        for _ in range(5):
            cost = torch.rand(queries, targets, generator=generator)
            matcher = _FixedCostMatcher([cost.clone()])
            [(query_idx, target_idx)] = matcher(_outputs(1, queries), [{"labels": None}])
            assert len(query_idx) == targets
            total = cost[query_idx, target_idx].sum().item()
            assert total == pytest.approx(_brute_force_min(cost.tolist()), abs=1e-6)


def test_pairwise_costs_equal_elementwise_losses():
    torch.manual_seed(0)
    inputs = torch.randn(4, 30)
    targets = (torch.rand(3, 30) > 0.5).float()
    bce = batch_sigmoid_ce_loss(inputs, targets)
    dice = batch_dice_loss(inputs, targets)
    for n in range(4):
        for m in range(3):
            expected_bce = torch.nn.functional.binary_cross_entropy_with_logits(
                inputs[n], targets[m]
            )
            probs = inputs[n].sigmoid()
            expected_dice = 1 - (2 * (probs * targets[m]).sum() + 1) / (
                probs.sum() + targets[m].sum() + 1
            )
            torch.testing.assert_close(bce[n, m], expected_bce)
            torch.testing.assert_close(dice[n, m], expected_dice)


def test_real_costs_recover_the_obvious_assignment():
    torch.manual_seed(0)
    height = width = 16
    masks = torch.zeros(3, height, width)
    masks[0, :8, :8] = 1
    masks[1, 8:, :] = 1
    masks[2, :8, 8:] = 1
    labels = torch.tensor([2, 0, 1])
    # Query q predicts target perm[q] (mask and class); query 4 predicts background.
    perm = [2, 0, 1, None]
    pred_masks = torch.full((4, height, width), -8.0)
    pred_logits = torch.zeros(4, 4)
    for query, target in enumerate(perm):
        if target is not None:
            pred_masks[query][masks[target] > 0] = 8.0
            pred_logits[query, labels[target]] = 5.0
        else:
            pred_logits[query, 3] = 5.0
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=256)
    outputs = {"pred_logits": pred_logits[None], "pred_masks": pred_masks[None]}
    [(query_idx, target_idx)] = matcher(outputs, [{"labels": labels, "masks": masks}])
    assert dict(zip(query_idx.tolist(), target_idx.tolist())) == {0: 2, 1: 0, 2: 1}


def test_image_without_targets_and_argument_errors():
    matcher = HungarianMatcher(num_points=16)
    outputs = {"pred_logits": torch.randn(1, 5, 3), "pred_masks": torch.randn(1, 5, 8, 8)}
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8)}
    [(query_idx, target_idx)] = matcher(outputs, [empty])
    assert query_idx.numel() == 0 and target_idx.numel() == 0
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        matcher(outputs, [empty, empty])
    with pytest.raises(ValueError, match="all 0"):
        HungarianMatcher(0, 0, 0, num_points=4)
    with pytest.raises(ValueError, match="num_points"):
        HungarianMatcher(num_points=0)
