import math

import pytest
import torch

from mask2former.modeling.postprocessing import (
    instance_inference,
    panoptic_inference,
    postprocess_image,
    sem_seg_postprocess,
    semantic_inference,
)

BIG = 20.0  # a logit whose sigmoid / softmax is 1 to float precision


def _class_logits(rows):
    """(Q, K + 1) logits with a probability of ~1 on the given class of every query."""
    num_classes_plus_one = 4
    logits = torch.full((len(rows), num_classes_plus_one), -BIG)
    for q, c in enumerate(rows):
        logits[q, c] = BIG
    return logits


def test_semantic_inference_known_values():
    mask_cls = torch.tensor([[0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0]])  # K = 2
    mask_pred = torch.zeros(2, 1, 2)
    mask_pred[1, 0, 0] = -BIG  # query 1 is off at pixel (0, 0) and on at pixel (0, 1)
    mask_pred[1, 0, 1] = BIG  # query 0 has mask probability 0.5 everywhere
    out = semantic_inference(mask_cls, mask_pred)
    assert out.shape == (2, 1, 2)
    # Query 0 class probs (1/3, 1/3), query 1 (3/5, 1/5).
    expected = torch.tensor([[[1 / 6, 1 / 6 + 3 / 5]], [[1 / 6, 1 / 6 + 1 / 5]]])
    torch.testing.assert_close(out, expected)


def test_sem_seg_postprocess_crops_then_resizes():
    result = torch.arange(2 * 4 * 6, dtype=torch.float32).view(2, 4, 6)
    same = sem_seg_postprocess(result, (3, 5), 3, 5)
    torch.testing.assert_close(same, result[:, :3, :5])
    up = sem_seg_postprocess(torch.ones(1, 4, 4), (2, 2), 7, 9)
    assert up.shape == (1, 7, 9)
    torch.testing.assert_close(up, torch.ones(1, 7, 9))


def test_panoptic_inference_hand_made():
    # Classes: 0 thing, 1 and 2 stuff, 3 = no object.
    h = w = 4
    masks = torch.full((6, h, w), -BIG)
    masks[0, :, :2] = BIG  # thing, left half
    masks[1, :2, 3] = BIG  # stuff class 1, top of the last column
    masks[2, 2:, 3] = BIG  # stuff class 1 again, bottom: merged with query 1
    masks[3, :, :] = BIG  # no-object query: dropped
    masks[4, :, :] = BIG  # thing with a low score: dropped by the object mask threshold
    masks[5, :, :3] = BIG  # thing with a lower score than query 0: wins 4 of its 12 pixels
    mask_cls = _class_logits([0, 1, 1, 3, 0, 0])
    mask_cls[4] = torch.tensor([0.0, 0.0, 0.0, 0.0])  # top class prob 0.25
    mask_cls[5] = torch.tensor([math.log(27.0), 0.0, 0.0, 0.0])  # top class prob 0.9
    panoptic_seg, segments = panoptic_inference(
        mask_cls, masks, object_mask_threshold=0.8, overlap_threshold=0.8, thing_ids=[0]
    )
    assert panoptic_seg.dtype == torch.int32 and panoptic_seg.shape == (h, w)
    # Query 5 is dropped (4 / 12 < overlap threshold): its column stays void (0).
    expected = torch.tensor([[1, 1, 0, 2]] * 4, dtype=torch.int32)
    assert torch.equal(panoptic_seg, expected)
    assert segments == [
        {"id": 1, "isthing": True, "category_id": 0},
        {"id": 2, "isthing": False, "category_id": 1},
    ]
    # With no overlap requirement, query 5 keeps the one column it wins.
    panoptic_seg, segments = panoptic_inference(
        mask_cls, masks, object_mask_threshold=0.8, overlap_threshold=0.0, thing_ids=[0]
    )
    assert panoptic_seg[:, 2].tolist() == [3, 3, 3, 3]
    assert segments[-1] == {"id": 3, "isthing": True, "category_id": 0}


def test_panoptic_inference_nothing_kept():
    panoptic_seg, segments = panoptic_inference(
        _class_logits([3, 3]),
        torch.zeros(2, 5, 6),
        object_mask_threshold=0.8,
        overlap_threshold=0.8,
        thing_ids=[0],
    )
    assert segments == [] and panoptic_seg.shape == (5, 6) and panoptic_seg.sum() == 0


def test_instance_inference_hand_made():
    # K = 3 classes; query 0: class 2 (p ~ 1), query 1: class 0 with p = e^2 / (e^2 + 3).
    mask_cls = torch.tensor([[-BIG, -BIG, BIG, -BIG], [2.0, 0.0, 0.0, 0.0]])
    mask_pred = torch.full((2, 5, 6), -BIG)
    mask_pred[0, 1:3, 2:5] = BIG
    mask_pred[1, 4, 0] = 0.5
    result = instance_inference(mask_cls, mask_pred, test_topk_per_image=2)
    order = torch.argsort(result.scores, descending=True)
    assert result.image_size == (5, 6)
    assert result.pred_classes[order].tolist() == [2, 0]
    p_class = math.exp(2) / (math.exp(2) + 3)
    p_mask = 1 / (1 + math.exp(-0.5))
    torch.testing.assert_close(
        result.scores[order], torch.tensor([1.0, p_class * p_mask / (1 + 1e-6)])
    )
    assert result.pred_masks.dtype == torch.float32
    assert result.pred_masks[order[0]].sum() == 6
    assert result.pred_boxes.tensor[order].tolist() == [[2, 1, 5, 3], [0, 4, 1, 5]]

    # Only the thing classes survive when thing ids are given (panoptic on).
    things = instance_inference(mask_cls, mask_pred, test_topk_per_image=2, thing_ids=[0, 1])
    assert things.pred_classes.tolist() == [0]
    assert len(things) == 1 and things.pred_masks.shape == (1, 5, 6)


def test_instance_inference_topk_counts_query_class_pairs():
    mask_cls = torch.randn(4, 6)  # Q = 4, K = 5
    result = instance_inference(mask_cls, torch.randn(4, 3, 3), test_topk_per_image=7)
    assert len(result) == 7
    # Asking for more than Q * K pairs returns all of them.
    assert len(instance_inference(mask_cls, torch.randn(4, 3, 3), test_topk_per_image=100)) == 20


def _postprocess(**overrides):
    kwargs = dict(
        semantic_on=True,
        panoptic_on=True,
        instance_on=True,
        sem_seg_postprocess_before_inference=True,
        object_mask_threshold=0.8,
        overlap_threshold=0.8,
        test_topk_per_image=5,
        thing_ids=[0],
    )
    kwargs.update(overrides)
    return postprocess_image(torch.randn(3, 4), torch.randn(3, 16, 16), (12, 10), 24, 20, **kwargs)


def test_postprocess_image_outputs_and_errors():
    out = _postprocess()
    assert out["sem_seg"].shape == (3, 24, 20)
    assert out["panoptic_seg"][0].shape == (24, 20)
    assert out["instances"].image_size == (24, 20)
    semantic_only = _postprocess(
        panoptic_on=False, instance_on=False, sem_seg_postprocess_before_inference=False
    )
    assert list(semantic_only) == ["sem_seg"] and semantic_only["sem_seg"].shape == (3, 24, 20)
    with pytest.raises(ValueError, match="sem_seg_postprocess_before_inference"):
        _postprocess(sem_seg_postprocess_before_inference=False)
    with pytest.raises(ValueError, match="thing_ids"):
        _postprocess(thing_ids=None)
