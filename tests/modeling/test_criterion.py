import pytest
import torch
import torch.nn.functional as F

from mask2former.layers.point_sample import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
)
from mask2former.modeling.criterion import SetCriterion, dice_loss, sigmoid_ce_loss
from mask2former.modeling.matcher import HungarianMatcher

NUM_CLASSES = 3


def _criterion(num_points=64, eos_coef=0.1, matcher=None):
    matcher = matcher or HungarianMatcher(num_points=num_points)
    weight_dict = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    return SetCriterion(
        NUM_CLASSES,
        matcher=matcher,
        weight_dict=weight_dict,
        eos_coef=eos_coef,
        losses=["labels", "masks"],
        num_points=num_points,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
    )


class _FixedMatcher(torch.nn.Module):
    def __init__(self, indices):
        super().__init__()
        self.indices = indices

    def forward(self, outputs, targets):
        return self.indices


def test_empty_weight_buffer_and_unknown_loss():
    criterion = _criterion(eos_coef=0.25)
    assert "empty_weight" in criterion.state_dict()
    torch.testing.assert_close(criterion.empty_weight, torch.tensor([1.0, 1.0, 1.0, 0.25]))
    with pytest.raises(ValueError, match="unknown losses"):
        SetCriterion(3, HungarianMatcher(num_points=4), {}, 0.1, ["boxes"], 4, 3.0, 0.75)


def test_class_loss_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, NUM_CLASSES + 1)
    indices = [(torch.tensor([1, 3]), torch.tensor([1, 0])), (torch.tensor([0]), torch.tensor([0]))]
    targets = [
        {"labels": torch.tensor([2, 0]), "masks": torch.zeros(2, 8, 8)},
        {"labels": torch.tensor([1]), "masks": torch.zeros(1, 8, 8)},
    ]
    criterion = _criterion(matcher=_FixedMatcher(indices), eos_coef=0.1)
    losses = criterion.loss_labels({"pred_logits": logits}, targets, indices, num_masks=3.0)
    # Image 0: query 1 -> class 0, query 3 -> class 2; image 1: query 0 -> class 1.
    target_classes = torch.full((2, 4), NUM_CLASSES)
    target_classes[0, 1], target_classes[0, 3], target_classes[1, 0] = 0, 2, 1
    log_probs = logits.log_softmax(-1)
    weights = torch.where(target_classes == NUM_CLASSES, 0.1, 1.0)
    nll = -log_probs.gather(-1, target_classes[..., None])[..., 0]
    expected = (weights * nll).sum() / weights.sum()
    torch.testing.assert_close(losses["loss_ce"], expected)


def test_mask_losses_follow_matching_and_padding():
    torch.manual_seed(0)
    pred_masks = torch.randn(2, 3, 8, 8)
    targets = [
        {"labels": torch.tensor([0, 1]), "masks": torch.rand(2, 16, 16) > 0.5},
        {"labels": torch.tensor([2]), "masks": torch.rand(1, 12, 16) > 0.5},
    ]
    indices = [(torch.tensor([0, 2]), torch.tensor([1, 0])), (torch.tensor([1]), torch.tensor([0]))]
    criterion = _criterion(num_points=20)
    torch.manual_seed(5)
    losses = criterion.loss_masks({"pred_masks": pred_masks}, targets, indices, num_masks=3.0)

    # The same computation by hand, with the same random draws.
    padded_second = torch.zeros(1, 16, 16, dtype=torch.bool)
    padded_second[:, :12] = targets[1]["masks"]
    matched_targets = torch.stack(
        [targets[0]["masks"][1], targets[0]["masks"][0], padded_second[0]]
    ).float()[:, None]
    matched_preds = torch.stack([pred_masks[0, 0], pred_masks[0, 2], pred_masks[1, 1]])[:, None]
    torch.manual_seed(5)
    coords = get_uncertain_point_coords_with_randomness(
        matched_preds, calculate_uncertainty, 20, 3.0, 0.75
    )
    point_logits = point_sample(matched_preds, coords, align_corners=False)[:, 0]
    point_labels = point_sample(matched_targets, coords, align_corners=False)[:, 0]
    torch.testing.assert_close(
        losses["loss_mask"], sigmoid_ce_loss(point_logits, point_labels, 3.0)
    )
    torch.testing.assert_close(losses["loss_dice"], dice_loss(point_logits, point_labels, 3.0))


def test_elementwise_losses():
    inputs = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected_bce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    torch.testing.assert_close(
        sigmoid_ce_loss(inputs, targets, 4.0), expected_bce.mean(1).sum() / 4
    )
    probs = inputs.sigmoid()
    per_mask = 1 - (2 * (probs * targets).sum(1) + 1) / (probs.sum(1) + targets.sum(1) + 1)
    torch.testing.assert_close(dice_loss(inputs, targets, 4.0), per_mask.sum() / 4)


def _random_batch(queries=5, size=16, aux_layers=2, requires_grad=False):
    def layer():
        return {
            "pred_logits": torch.randn(2, queries, NUM_CLASSES + 1, requires_grad=requires_grad),
            "pred_masks": torch.randn(
                2, queries, size // 4, size // 4, requires_grad=requires_grad
            ),
        }

    outputs = layer()
    outputs["aux_outputs"] = [layer() for _ in range(aux_layers)]
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": torch.rand(2, size, size) > 0.5},
        # A differently sized target is zero-padded to the largest one.
        {"labels": torch.tensor([1]), "masks": torch.rand(1, size - 4, size) > 0.5},
    ]
    return outputs, targets


def test_forward_keys_gradients_and_determinism():
    torch.manual_seed(0)
    outputs, targets = _random_batch(requires_grad=True)
    criterion = _criterion()
    torch.manual_seed(1)
    losses = criterion(outputs, targets)
    names = ["loss_ce", "loss_mask", "loss_dice"]
    assert set(losses) == set(names + [f"{n}_{i}" for n in names for i in range(2)])
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert outputs["pred_masks"].grad.abs().sum() > 0
    assert outputs["aux_outputs"][1]["pred_logits"].grad.abs().sum() > 0
    torch.manual_seed(1)
    again = criterion(outputs, targets)
    assert all(torch.equal(losses[k], again[k]) for k in losses)


def test_no_targets_gives_zero_mask_loss():
    outputs, _ = _random_batch(aux_layers=0)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16)}
    losses = _criterion()(outputs, [empty, empty])
    assert losses["loss_mask"].item() == 0 and losses["loss_dice"].item() == 0
    # Every query targets "no object".
    expected = F.cross_entropy(
        outputs["pred_logits"].transpose(1, 2), torch.full((2, 5), NUM_CLASSES)
    )
    torch.testing.assert_close(losses["loss_ce"], expected)


def test_perfect_prediction_has_lower_loss():
    torch.manual_seed(0)
    masks = torch.zeros(2, 16, 16)
    masks[0, :, :8] = 1
    masks[1, :, 8:] = 1
    targets = [{"labels": torch.tensor([1, 2]), "masks": masks}]
    good_masks = torch.full((1, 3, 16, 16), -10.0)
    good_masks[0, 0][masks[1] > 0] = 10.0
    good_masks[0, 2][masks[0] > 0] = 10.0
    good_logits = torch.tensor(
        [[[-9.0, -9.0, 9.0, -9.0], [-9.0, -9.0, -9.0, 9.0], [-9, 9, -9, -9]]]
    )
    good = _criterion()({"pred_logits": good_logits, "pred_masks": good_masks}, targets)
    bad = _criterion()(
        {"pred_logits": torch.zeros(1, 3, 4), "pred_masks": torch.zeros(1, 3, 16, 16)}, targets
    )
    assert good["loss_ce"] < 1e-3 < bad["loss_ce"]
    # Importance sampling concentrates on mask borders, where even a perfect prediction is
    # blurred by the bilinear sampling; the mask losses still drop a lot.
    for name in ("loss_mask", "loss_dice"):
        assert good[name] < 0.8 * bad[name]
