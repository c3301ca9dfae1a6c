"""Semantic, panoptic and instance inference of one image, as pure functions.

Notation: Q queries, K classes (the class logits have K + 1 entries, the last being
"no object"), masks are logits before the sigmoid. The public ``*_inference`` functions take
full-resolution masks of all queries; ``semantic_scores``, ``PanopticBands`` and
``InstanceBands`` take what ``postprocessing.postprocess_batch`` has already computed
(probabilities, the kept queries only, row band by row band) so that nothing is done twice
and no (N, H, W) temporary is needed.
"""

from __future__ import annotations

from collections.abc import Collection
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


def semantic_scores(
    mask_cls: torch.Tensor, mask_probs: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(K, H, W) scores from (Q, K + 1) class logits and (Q, H, W) mask probabilities.

    ``dtype`` (e.g. bfloat16 for reduced-precision inference): the product's operands are
    cast to it, as autocast casts a matrix product's, and the result comes back in the
    probabilities' dtype.
    """
    class_probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    num_queries, height, width = mask_probs.shape
    flat_probs = mask_probs.reshape(num_queries, height * width)
    if dtype is None or dtype == mask_probs.dtype:
        scores = torch.mm(class_probs.t(), flat_probs)
    else:
        scores = torch.mm(class_probs.t().to(dtype), flat_probs.to(dtype)).to(mask_probs.dtype)
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
    segments = PanopticBands(scores, labels, (mask_pred.shape[-2], mask_pred.shape[-1]))
    if queries.numel() > 0:
        segments.add(0, mask_pred[queries].sigmoid())
    return segments.finish(overlap_threshold=overlap_threshold, thing_ids=thing_ids)


class PanopticBands:
    """``panoptic_inference`` on the kept queries, fed band by band.

    ``add`` takes the (N, rows, W) mask probabilities of a row band (overwritten); ``finish``
    decides the segments from areas counted over all bands and paints the id map.

    Args:
        scores: (N,) class probabilities of the kept queries.
        labels: (N,) their classes.
        image_size: (H, W) of the result.
    """

    def __init__(
        self, scores: torch.Tensor, labels: torch.Tensor, image_size: tuple[int, int]
    ) -> None:
        self.scores = scores.view(-1, 1, 1)
        self.labels = labels
        device = scores.device
        self.winner = torch.zeros(image_size, dtype=torch.int64, device=device)
        self.confident_winner = torch.zeros(image_size, dtype=torch.bool, device=device)
        self.confident_areas = torch.zeros(scores.shape[0], dtype=torch.int64, device=device)

    def add(self, first_row: int, mask_probs: torch.Tensor) -> None:
        if mask_probs.shape[0] == 0:
            return
        rows = slice(first_row, first_row + mask_probs.shape[1])
        confident = mask_probs >= 0.5  # (N, rows, W)
        # Counting over uint8 into int32 avoids an int64 copy of the whole bool tensor.
        self.confident_areas += confident.view(torch.uint8).flatten(1).sum(1, dtype=torch.int32)
        # max(0) gives argmax's indices (the first maximum) several times faster on CPU.
        winner = mask_probs.mul_(self.scores).max(0).indices
        self.winner[rows] = winner
        # A pixel belongs to its winner's segment when the winner is confident there.
        self.confident_winner[rows] = confident.gather(0, winner[None])[0]

    def finish(
        self, *, overlap_threshold: float, thing_ids: Collection[int]
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """(H, W) int32 segment ids and segments_info, as ``panoptic_inference``."""
        num_kept = self.labels.shape[0]
        void = torch.zeros(self.winner.shape, dtype=torch.int32, device=self.winner.device)
        if num_kept == 0:
            return void, []
        winner = self.winner.flatten()
        won_areas = torch.bincount(winner, minlength=num_kept)
        # Pixels where the winner is not confident are counted in an extra last bin.
        segment_areas = torch.bincount(
            torch.where(self.confident_winner.flatten(), winner, num_kept), minlength=num_kept + 1
        )[:num_kept]
        thing_ids = set(int(i) for i in thing_ids)
        segment_of_query = [0] * num_kept
        segments_info: list[dict[str, Any]] = []
        stuff_segment_ids: dict[int, int] = {}
        for k, (pred_class, mask_area, original_area, area) in enumerate(
            zip(
                self.labels.tolist(),
                won_areas.tolist(),
                self.confident_areas.tolist(),
                segment_areas.tolist(),
            )
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
        return torch.where(self.confident_winner, segment_ids[self.winner], 0), segments_info


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
    instances = InstanceBands(scores, labels, rows, mask_logits > 0)
    instances.add(0, mask_logits.sigmoid_())
    return instances.finish()


class InstanceBands:
    """``instance_inference`` on the distinct queries of the (query, class) pairs: ``add``
    takes the (M, rows, W) mask probabilities of a row band, ``finish`` returns
    the Instances.

    Args:
        scores: (N,) class probabilities of the pairs.
        labels: (N,) their classes.
        rows: (N,) the distinct query (row of ``binary``) of each pair.
        binary: (M, H, W) bool masks of the distinct queries (logits > 0).
    """

    def __init__(
        self, scores: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, binary: torch.Tensor
    ) -> None:
        self.scores, self.labels, self.rows, self.binary = scores, labels, rows, binary
        # Band sums are added in float64 so that their order hardly matters (the plain
        # formula's float32 sum over the whole mask is within ~1e-7 of it).
        self.inside = torch.zeros(binary.shape[0], dtype=torch.float64, device=binary.device)

    def add(self, first_row: int, mask_probs: torch.Tensor) -> None:
        binary = self.binary[:, first_row : first_row + mask_probs.shape[1]]
        # The same products and per-mask sums as the plain formula (a GEMM-order dot product
        # would drift by ~1e-6).
        self.inside += torch.where(binary, mask_probs, 0.0).flatten(1).sum(1)

    def finish(self) -> Instances:
        binary = self.binary
        num_distinct, height, width = binary.shape
        # Mask by mask: each int32 temporary stays small (one (N, H*W) int32 copy of the whole
        # stack costs ~10x more, in page faults).
        areas = torch.zeros(num_distinct, dtype=torch.int32, device=binary.device)
        for index, mask in enumerate(binary):
            areas[index] = mask.view(torch.uint8).sum(dtype=torch.int32)
        areas = areas.float()
        mask_scores = self.inside.float() / (areas + 1e-6)
        result = Instances((height, width))
        result.pred_masks = binary[self.rows].float()  # gathers bytes, then converts
        # The original stores all-zero boxes here (computing them was "slow"); detectron2-style
        # consumers expect real ones, so these are the tight boxes of the binary masks.
        result.pred_boxes = Boxes(masks_to_boxes(binary)[self.rows])
        result.scores = self.scores * mask_scores[self.rows]
        result.pred_classes = self.labels
        return result
