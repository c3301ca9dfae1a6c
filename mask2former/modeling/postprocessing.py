"""Mask2Former inference post-processing as pure functions (tensors and plain arguments).

Shared by the detectron2-style ``MaskFormer`` meta-architecture and the transformers-style
image processor. Notation: Q queries, K classes (the class logits have K + 1 entries, the
last being "no object"), masks are logits before the sigmoid.

Full-resolution masks are the cost: ``postprocess_batch`` upsamples each image's masks once,
straight to the unpadded image (``upsample_masks``), takes their sigmoid once, and gives
panoptic and instance inference only the queries they keep. The results equal those of the
straightforward order (upsample the whole batch to the padded size, crop, resize, one task
after the other), which tests/modeling/test_postprocessing_equivalence.py checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from mask2former.modeling.mask_upsampling import (
    resize_to_output,
    sem_seg_postprocess,
    upsample_masks,
)
from mask2former.structures import Boxes, Instances, masks_to_boxes

__all__ = [
    "instance_inference",
    "panoptic_inference",
    "postprocess_batch",
    "postprocess_image",
    "sem_seg_postprocess",
    "semantic_inference",
    "topk_query_class_pairs",
    "upsample_masks",
]


def semantic_inference(mask_cls: torch.Tensor, mask_pred: torch.Tensor) -> torch.Tensor:
    """Per-pixel class scores: class probabilities (without "no object") times mask probabilities.

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H, W) mask logits.

    Returns:
        (K, H, W) scores, summed over queries.
    """
    return _semantic_scores(mask_cls, mask_pred.sigmoid())


def _semantic_scores(mask_cls: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
    """(K, H, W) scores from (Q, K + 1) class logits and (Q, H, W) mask probabilities."""
    class_probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    num_queries, height, width = mask_probs.shape
    scores = torch.mm(class_probs.t(), mask_probs.reshape(num_queries, height * width))
    return scores.view(-1, height, width)


def _panoptic_queries(
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
    scores, labels, queries = _panoptic_queries(mask_cls, object_mask_threshold)
    return _panoptic_segments(
        mask_pred[queries].sigmoid(),
        scores,
        labels,
        overlap_threshold=overlap_threshold,
        thing_ids=thing_ids,
        image_size=(mask_pred.shape[-2], mask_pred.shape[-1]),
    )


def _panoptic_segments(
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
    return _instances(
        scores,
        labels,
        rows,
        mask_logits > 0,
        mask_logits.sigmoid_(),
        image_size=mask_pred.shape[-2:],
    )


def _instances(
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


def _check_tasks(
    *,
    panoptic_on: bool,
    instance_on: bool,
    sem_seg_postprocess_before_inference: bool,
    thing_ids: Collection[int] | None,
) -> None:
    if (panoptic_on or instance_on) and not sem_seg_postprocess_before_inference:
        raise ValueError(
            "panoptic and instance inference need sem_seg_postprocess_before_inference=True"
        )
    if panoptic_on and thing_ids is None:
        raise ValueError(
            "panoptic inference needs thing_ids (the contiguous ids of the thing classes); "
            "MaskFormer.from_config reads them from the metadata of DATASETS.TRAIN[0] "
            "(thing_dataset_id_to_contiguous_id), so register that dataset before building "
            "the model, or pass thing_ids explicitly"
        )


def _infer(
    mask_cls: torch.Tensor,
    masks_of: Callable[[torch.Tensor | None], torch.Tensor],
    output_size: tuple[int, int],
    *,
    semantic_on: bool,
    panoptic_on: bool,
    instance_on: bool,
    object_mask_threshold: float,
    overlap_threshold: float,
    test_topk_per_image: int,
    thing_ids: Collection[int] | None,
) -> dict[str, Any]:
    """The requested results from (Q, K + 1) class logits and ``masks_of(query_ids)``, which
    gives the (n, H, W) float32 mask logits of those queries at the result's resolution
    (all queries for None) in a new tensor (it is overwritten). Semantic inference needs
    every query; otherwise only the queries panoptic and instance inference keep are
    upsampled. The sigmoid is taken once."""
    if not (semantic_on or panoptic_on or instance_on):
        return {}
    mask_cls = mask_cls.float()
    num_queries = mask_cls.shape[0]
    panoptic = _panoptic_queries(mask_cls, object_mask_threshold) if panoptic_on else None
    pairs = None
    if instance_on:
        pairs = topk_query_class_pairs(
            mask_cls, test_topk_per_image, thing_ids if panoptic_on else None
        )
    row_of_query = torch.arange(num_queries, device=mask_cls.device)
    if semantic_on:
        mask_logits = masks_of(None)
    else:
        wanted = [selected[2] for selected in (panoptic, pairs) if selected is not None]
        needed = torch.unique(torch.cat(wanted))
        row_of_query[needed] = torch.arange(needed.numel(), device=mask_cls.device)
        if needed.numel() == 0:
            mask_logits = mask_cls.new_zeros((0, *output_size))
        else:
            mask_logits = masks_of(needed)
    if pairs is not None:
        distinct, pair_rows = torch.unique(pairs[2], return_inverse=True)
        instance_rows = row_of_query[distinct]
        # Binarized before the logits become probabilities (a bool gather is 4x smaller).
        binary = mask_logits > 0
        if instance_rows.numel() < binary.shape[0]:
            binary = binary[instance_rows]
    mask_probs = mask_logits.sigmoid_()  # in place: the logits are not needed any more

    result: dict[str, Any] = {}
    if semantic_on:
        result["sem_seg"] = _semantic_scores(mask_cls, mask_probs)
    if panoptic is not None:
        scores, labels, queries = panoptic
        result["panoptic_seg"] = _panoptic_segments(
            mask_probs[row_of_query[queries]],
            scores,
            labels,
            overlap_threshold=overlap_threshold,
            thing_ids=thing_ids,
            image_size=output_size,
        )
    if pairs is not None:
        scores, labels, _ = pairs
        if instance_rows.numel() < mask_probs.shape[0]:
            mask_probs = mask_probs[instance_rows]
        result["instances"] = _instances(
            scores, labels, pair_rows, binary, mask_probs, image_size=output_size
        )
    return result


def postprocess_image(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    image_size: tuple[int, int],
    output_height: int,
    output_width: int,
    *,
    semantic_on: bool,
    panoptic_on: bool,
    instance_on: bool,
    sem_seg_postprocess_before_inference: bool,
    object_mask_threshold: float,
    overlap_threshold: float,
    test_topk_per_image: int,
    thing_ids: Collection[int] | None,
) -> dict[str, Any]:
    """All requested results of one image, in the order and at the resolution of the original.

    ``postprocess_batch`` does the same from the network's 1/4-resolution masks, faster.

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H_pad, W_pad) mask logits already upsampled to the padded input size.
        image_size: (h, w) of the image inside the padded input.
        output_height: requested output height.
        output_width: requested output width.
        semantic_on: return "sem_seg" (K, H_out, W_out).
        panoptic_on: return "panoptic_seg" (id map (H_out, W_out), segments_info).
        instance_on: return "instances" at (H_out, W_out).
        sem_seg_postprocess_before_inference: resize the masks to the output size first
            (required for panoptic and instance); otherwise the semantic result is computed at
            the input size and resized afterwards.
        object_mask_threshold: see ``panoptic_inference``.
        overlap_threshold: see ``panoptic_inference``.
        test_topk_per_image: see ``instance_inference``.
        thing_ids: contiguous thing class ids; needed when ``panoptic_on``.

    Returns:
        Dict with the keys switched on.
    """
    _check_tasks(
        panoptic_on=panoptic_on,
        instance_on=instance_on,
        sem_seg_postprocess_before_inference=sem_seg_postprocess_before_inference,
        thing_ids=thing_ids,
    )
    height, width = image_size
    cropped = mask_pred.float()[:, :height, :width]
    if sem_seg_postprocess_before_inference:
        masks = resize_to_output(cropped, output_height, output_width).contiguous()
    else:
        masks = cropped.contiguous()
    if masks.data_ptr() == mask_pred.data_ptr():
        masks = masks.clone()  # _infer overwrites the masks it gets; keep the caller's
    result = _infer(
        mask_cls,
        lambda queries: masks if queries is None else masks[queries],
        (masks.shape[-2], masks.shape[-1]),
        semantic_on=semantic_on,
        panoptic_on=panoptic_on,
        instance_on=instance_on,
        object_mask_threshold=object_mask_threshold,
        overlap_threshold=overlap_threshold,
        test_topk_per_image=test_topk_per_image,
        thing_ids=thing_ids,
    )
    if semantic_on and not sem_seg_postprocess_before_inference:
        result["sem_seg"] = resize_to_output(result["sem_seg"], output_height, output_width)
    return result


def postprocess_batch(
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    padded_size: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
    output_sizes: Sequence[tuple[int, int]],
    **options: Any,
) -> list[dict[str, Any]]:
    """MaskFormer's inference results from the network outputs of a batch.

    Equal to upsampling ``pred_masks`` to the padded size and calling ``postprocess_image``
    image by image, but each image's masks are upsampled once, straight to the image without
    its padding, and only for the queries some task needs.

    Args:
        pred_logits: (B, Q, K + 1) class logits (any float dtype; computed in float32).
        pred_masks: (B, Q, H_pad / 4, W_pad / 4) mask logits.
        padded_size: (H_pad, W_pad) of the padded network input.
        image_sizes: (h, w) of each image inside the padded input.
        output_sizes: (H_out, W_out) of each image's results.
        **options: ``postprocess_image``'s keyword arguments (``semantic_on``, ...).

    Returns:
        One dict per image with the keys switched on.
    """
    if not len(pred_logits) == len(pred_masks) == len(image_sizes) == len(output_sizes):
        raise ValueError(
            f"postprocess_batch: got {len(pred_logits)} class logits, {len(pred_masks)} masks, "
            f"{len(image_sizes)} image sizes and {len(output_sizes)} output sizes; expected "
            "one of each per image"
        )
    _check_tasks(
        panoptic_on=options["panoptic_on"],
        instance_on=options["instance_on"],
        sem_seg_postprocess_before_inference=options["sem_seg_postprocess_before_inference"],
        thing_ids=options["thing_ids"],
    )
    before_inference = options.pop("sem_seg_postprocess_before_inference")
    results = []
    for mask_cls, low_res, image_size, output_size in zip(
        pred_logits, pred_masks, image_sizes, output_sizes
    ):
        masks_size = tuple(output_size) if before_inference else tuple(image_size)

        def masks_of(queries, low_res=low_res, image_size=image_size, masks_size=masks_size):
            selected = low_res if queries is None else low_res[queries]
            return upsample_masks(selected, padded_size, image_size, masks_size)

        result = _infer(mask_cls, masks_of, masks_size, **options)
        if "sem_seg" in result and not before_inference:
            result["sem_seg"] = resize_to_output(result["sem_seg"], *output_size)
        results.append(result)
    return results
