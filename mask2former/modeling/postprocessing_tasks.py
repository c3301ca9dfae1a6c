"""Semantic, panoptic and instance inference of one image, as pure functions.

Notation: Q queries, K classes (the class logits have K + 1 entries, the last being
"no object"), masks are logits before the sigmoid. The public ``*_inference`` functions take
full-resolution masks of all queries; ``semantic_scores``, ``panoptic_segments`` and
``instances_from_masks`` take what ``postprocessing.postprocess_batch`` has already computed
(probabilities, the kept queries only) so that nothing is done twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from mask2former.structures import Boxes, Instances, masks_to_boxes


def semantic_inference(mask_cls: torch.Tensor, mask_pred: torch.Tensor) -> torch.Tensor:
    """Per-pixel class scores: class probabilities (without "no object") times mask probabilities.

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H, W) mask logits.

    Returns:
        (K, H, W) scores, summed over queries.
    """
    return semantic_scores(mask_cls, mask_pred.sigmoid())


def semantic_scores(mask_cls: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
    """(K, H, W) scores from (Q, K + 1) class logits and (Q, H, W) mask probabilities."""
    class_probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    num_queries, height, width = mask_probs.shape
    scores = torch.mm(class_probs.t(), mask_probs.reshape(num_queries, height * width))
    return scores.view(-1, height, width)


def panoptic_queries(
    mask_cls: torch.Tensor, object_mask_threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores (N,), labels (N,) and ids (N,) of the kept queries: not "no object", score
    above the threshold."""
    num_classes = mask_cls.shape[-1] - 1
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    return scores[keep], labels[keep], keep.nonzero().flatten()


def panoptic_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: Collection[int],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Panoptic segmentation from query predictions (Mask2Former's rule).

    Queries predicting "no object" or with top class probability <= ``object_mask_threshold``
    are dropped. Every pixel goes to the query with the highest ``score * mask_prob``; a query
    keeps the pixels it won whose mask probability is >= 0.5, unless it won less than
    ``overlap_threshold`` of its own mask (prob >= 0.5). Stuff queries of the same class are
    merged into one segment; segment ids start at 1 and 0 means "void".

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H, W) mask logits at the output resolution.
        object_mask_threshold: minimum class probability of a kept query.
        overlap_threshold: minimum fraction of a query's mask that must stay visible.
        thing_ids: contiguous class ids of the "thing" classes.

    Returns:
        (H, W) int32 segment id map and the list of segments
        ``{"id": int, "isthing": bool, "category_id": int}``.
    """
    scores, labels, queries = panoptic_queries(mask_cls, object_mask_threshold)
    return panoptic_segments(
        mask_pred[queries].sigmoid(),
        scores,
        labels,
        overlap_threshold=overlap_threshold,
        thing_ids=thing_ids,
        image_size=(mask_pred.shape[-2], mask_pred.shape[-1]),
    )


def panoptic_segments(
    mask_probs: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    overlap_threshold: float,
    thing_ids: Collection[int],
    image_size: tuple[int, int],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``panoptic_inference`` on the kept queries: (N, H, W) mask probabilities (overwritten),
    (N,) scores and labels. Areas come from one pass over the winner map instead of one
    per query."""
    void = torch.zeros(image_size, dtype=torch.int32, device=mask_probs.device)
    num_kept = mask_probs.shape[0]
    if num_kept == 0:
        return void, []
    confident = mask_probs >= 0.5  # (N, H, W)
    # Counting over uint8 into int32 avoids an int64 copy of the whole bool tensor.
    confident_areas = confident.view(torch.uint8).flatten(1).sum(1, dtype=torch.int32)
    # max(0) gives argmax's indices (the first maximum) several times faster on CPU.
    winner = mask_probs.mul_(scores.view(-1, 1, 1)).max(0).indices  # (H, W)
    # A pixel belongs to its winner's segment when the winner is confident there.
    confident_winner = confident.gather(0, winner[None])[0]
    won_areas = torch.bincount(winner.flatten(), minlength=num_kept)
    # Pixels where the winner is not confident are counted in an extra last bin.
    segment_areas = torch.bincount(
        torch.where(confident_winner, winner, num_kept).flatten(), minlength=num_kept + 1
    )[:num_kept]

    thing_ids = set(int(i) for i in thing_ids)
    segment_of_query = [0] * num_kept
    segments_info: list[dict[str, Any]] = []
    stuff_segment_ids: dict[int, int] = {}
    for k, (pred_class, mask_area, original_area, area) in enumerate(
        zip(labels.tolist(), won_areas.tolist(), confident_areas.tolist(), segment_areas.tolist())
    ):
        isthing = pred_class in thing_ids
        if mask_area == 0 or original_area == 0 or area == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing and pred_class in stuff_segment_ids:
            segment_of_query[k] = stuff_segment_ids[pred_class]
            continue
        segment_id = len(segments_info) + 1
        if not isthing:
            stuff_segment_ids[pred_class] = segment_id
        segment_of_query[k] = segment_id
        segments_info.append({"id": segment_id, "isthing": isthing, "category_id": pred_class})
    if not segments_info:
        return void, []
    segment_ids = torch.tensor(segment_of_query, dtype=torch.int32, device=winner.device)
    return torch.where(confident_winner, segment_ids[winner], 0), segments_info


def topk_query_class_pairs(
    mask_cls: torch.Tensor, topk: int, thing_ids: Collection[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``topk`` (query, class) pairs by class probability, in ``topk(sorted=False)`` order.

    Args:
        mask_cls: (Q, K + 1) class logits.
        topk: number of pairs (capped at Q * K).
        thing_ids: if given, pairs whose class is not in it are dropped afterwards.

    Returns:
        scores (N,), class labels (N,) int64 and query ids (N,) int64.
    """
    num_classes = mask_cls.shape[-1] - 1
    class_probs = F.softmax(mask_cls, dim=-1)[:, :-1]  # (Q, K)
    topk = min(topk, class_probs.numel())
    scores, pair_indices = class_probs.flatten(0, 1).topk(topk, sorted=False)
    labels = pair_indices % num_classes
    queries = pair_indices // num_classes
    if thing_ids is not None:
        is_thing = torch.zeros(num_classes, dtype=torch.bool, device=mask_cls.device)
        is_thing[[int(i) for i in thing_ids if 0 <= int(i) < num_classes]] = True
        keep = is_thing[labels]
        scores, labels, queries = scores[keep], labels[keep], queries[keep]
    return scores, labels, queries


def instance_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    test_topk_per_image: int,
    thing_ids: Collection[int] | None = None,
) -> Instances:
    """Instance segmentation: the top-k (query, class) pairs by class probability.

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H, W) mask logits at the output resolution.
        test_topk_per_image: number of (query, class) pairs kept (at most Q * K).
        thing_ids: if given, only pairs whose class is in it are kept (the original does this
            when panoptic segmentation is on).

    Returns:
        Instances of image size (H, W) with ``pred_masks`` (N, H, W) float {0, 1},
        ``pred_boxes`` (Boxes, XYXY), ``scores`` (N,) = class probability x mean mask
        probability inside the mask, ``pred_classes`` (N,) int64.
    """
    scores, labels, queries = topk_query_class_pairs(mask_cls, test_topk_per_image, thing_ids)
    # Several pairs often share a query: each distinct query's mask is processed once.
    distinct, rows = torch.unique(queries, return_inverse=True)
    mask_logits = mask_pred[distinct]
    return instances_from_masks(
        scores,
        labels,
        rows,
        mask_logits > 0,
        mask_logits.sigmoid_(),
        image_size=mask_pred.shape[-2:],
    )


def instances_from_masks(
    scores: torch.Tensor,
    labels: torch.Tensor,
    rows: torch.Tensor,
    binary: torch.Tensor,
    mask_probs: torch.Tensor,
    *,
    image_size: Sequence[int],
) -> Instances:
    """``instance_inference`` on the distinct queries of the pairs: (M, H, W) binary masks
    (logits > 0) and mask probabilities (overwritten); pair i (score, label) uses row
    ``rows[i]``."""
    binary_float = binary.float()
    areas = binary_float.flatten(1).sum(1)  # exact: sums of 0 and 1 below 2**24
    # The same products and per-mask sum as the plain formula (a GEMM-order dot product
    # would drift by ~1e-6).
    inside = mask_probs.mul_(binary_float).flatten(1).sum(1)
    mask_scores = inside / (areas + 1e-6)

    result = Instances(image_size)
    result.pred_masks = binary_float[rows]
    # The original stores all-zero boxes here (computing them was "slow"); detectron2-style
    # consumers expect real ones, so these are the tight boxes of the binary masks.
    result.pred_boxes = Boxes(masks_to_boxes(binary)[rows])
    result.scores = scores * mask_scores[rows]
    result.pred_classes = labels
    return result
