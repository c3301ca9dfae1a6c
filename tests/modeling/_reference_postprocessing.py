"""Frozen copy of the post-processing as it was before the speed-up (issue 11).

The reference that tests/modeling/test_postprocessing_equivalence.py and
bench/postprocessing.py compare the current code against: the functions of
mask2former/modeling/postprocessing.py, masks_to_boxes of mask2former/structures/masks.py and
the inference tail of MaskFormer.forward (upsample the 1/4-resolution mask logits of the batch
to the padded size, then post-process image by image), copied verbatim. Only used by tests and
benchmarks; do not "fix" or speed it up.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch.nn import functional as F

from mask2former.structures import Boxes, Instances


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes of binary masks; an empty mask gives a zero box.

    Args:
        masks: (N, H, W) bool or {0, 1}.

    Returns:
        (N, 4) float32 boxes in pixel-edge coordinates (x1 = last column + 1).
    """
    boxes = torch.zeros(masks.shape[0], 4, dtype=torch.float32, device=masks.device)
    if masks.numel() == 0:
        return boxes
    masks = masks.bool()
    x_any = masks.any(dim=1)
    y_any = masks.any(dim=2)
    for idx in range(masks.shape[0]):
        xs = torch.where(x_any[idx])[0]
        ys = torch.where(y_any[idx])[0]
        if len(xs) > 0 and len(ys) > 0:
            boxes[idx] = torch.tensor(
                [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32, device=masks.device
            )
    return boxes


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Crop the padding off a prediction and resize it to the requested output size.

    Args:
        result: (C, H_pad, W_pad) per-pixel predictions on the padded input.
        img_size: (h, w) of the input image inside the padded tensor.
        output_height: height of the returned prediction.
        output_width: width of the returned prediction.

    Returns:
        (C, output_height, output_width), bilinear with ``align_corners=False``.
    """
    cropped = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(
        cropped, size=(output_height, output_width), mode="bilinear", align_corners=False
    )[0]


def semantic_inference(mask_cls: torch.Tensor, mask_pred: torch.Tensor) -> torch.Tensor:
    """Per-pixel class scores: class probabilities (without "no object") times mask probabilities.

    Args:
        mask_cls: (Q, K + 1) class logits.
        mask_pred: (Q, H, W) mask logits.

    Returns:
        (K, H, W) scores, summed over queries.
    """
    class_probs = F.softmax(mask_cls, dim=-1)[..., :-1]
    mask_probs = mask_pred.sigmoid()
    return torch.einsum("qc,qhw->chw", class_probs, mask_probs)


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
    num_classes = mask_cls.shape[-1] - 1
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    mask_probs = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    cur_masks = mask_probs[keep]
    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks

    height, width = cur_masks.shape[-2:]
    panoptic_seg = torch.zeros((height, width), dtype=torch.int32, device=cur_masks.device)
    segments_info: list[dict[str, Any]] = []
    if cur_masks.shape[0] == 0:
        return panoptic_seg, segments_info

    thing_ids = set(int(i) for i in thing_ids)
    winner = cur_prob_masks.argmax(0)
    stuff_segment_ids: dict[int, int] = {}
    current_segment_id = 0
    for k in range(cur_classes.shape[0]):
        pred_class = int(cur_classes[k].item())
        isthing = pred_class in thing_ids
        won = winner == k
        confident = cur_masks[k] >= 0.5
        mask = won & confident
        mask_area = won.sum().item()
        original_area = confident.sum().item()
        if mask_area == 0 or original_area == 0 or mask.sum().item() == 0:
            continue
        if mask_area / original_area < overlap_threshold:
            continue
        if not isthing:
            if pred_class in stuff_segment_ids:
                panoptic_seg[mask] = stuff_segment_ids[pred_class]
                continue
            stuff_segment_ids[pred_class] = current_segment_id + 1
        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        segments_info.append(
            {"id": current_segment_id, "isthing": isthing, "category_id": pred_class}
        )
    return panoptic_seg, segments_info


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
    image_size = mask_pred.shape[-2:]
    num_queries, num_classes = mask_cls.shape[0], mask_cls.shape[-1] - 1
    class_probs = F.softmax(mask_cls, dim=-1)[:, :-1]  # (Q, K)
    labels = (
        torch.arange(num_classes, device=mask_cls.device)
        .unsqueeze(0)
        .repeat(num_queries, 1)
        .flatten(0, 1)
    )
    topk = min(test_topk_per_image, class_probs.numel())
    scores_per_image, topk_indices = class_probs.flatten(0, 1).topk(topk, sorted=False)
    labels_per_image = labels[topk_indices]
    query_indices = topk_indices // num_classes
    masks = mask_pred[query_indices]

    if thing_ids is not None:
        thing_ids = set(int(i) for i in thing_ids)
        keep = torch.tensor(
            [int(label) in thing_ids for label in labels_per_image.tolist()],
            dtype=torch.bool,
            device=scores_per_image.device,
        )
        scores_per_image = scores_per_image[keep]
        labels_per_image = labels_per_image[keep]
        masks = masks[keep]

    result = Instances(image_size)
    binary_masks = (masks > 0).float()
    result.pred_masks = binary_masks
    # The original stores all-zero boxes here (computing them was "slow"); detectron2-style
    # consumers expect real ones, so these are the tight boxes of the binary masks.
    result.pred_boxes = Boxes(masks_to_boxes(binary_masks))
    mask_scores = (masks.sigmoid().flatten(1) * binary_masks.flatten(1)).sum(1) / (
        binary_masks.flatten(1).sum(1) + 1e-6
    )
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
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
            the padded size and resized afterwards.
        object_mask_threshold: see ``panoptic_inference``.
        overlap_threshold: see ``panoptic_inference``.
        test_topk_per_image: see ``instance_inference``.
        thing_ids: contiguous thing class ids; needed when ``panoptic_on``.

    Returns:
        Dict with the keys switched on.
    """
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
    result: dict[str, Any] = {}
    if sem_seg_postprocess_before_inference:
        mask_pred = sem_seg_postprocess(mask_pred, image_size, output_height, output_width)
        mask_cls = mask_cls.to(mask_pred)
    if semantic_on:
        sem_seg = semantic_inference(mask_cls, mask_pred)
        if not sem_seg_postprocess_before_inference:
            sem_seg = sem_seg_postprocess(sem_seg, image_size, output_height, output_width)
        result["sem_seg"] = sem_seg
    if panoptic_on:
        result["panoptic_seg"] = panoptic_inference(
            mask_cls,
            mask_pred,
            object_mask_threshold=object_mask_threshold,
            overlap_threshold=overlap_threshold,
            thing_ids=thing_ids,
        )
    if instance_on:
        result["instances"] = instance_inference(
            mask_cls,
            mask_pred,
            test_topk_per_image=test_topk_per_image,
            thing_ids=thing_ids if panoptic_on else None,
        )
    return result


def reference_inference_tail(
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    padded_size: tuple[int, int],
    image_sizes: list[tuple[int, int]],
    output_sizes: list[tuple[int, int]],
    **options: Any,
) -> list[dict[str, Any]]:
    """MaskFormer.forward's inference tail as it was: from (B, Q, K + 1) class logits and
    (B, Q, H_pad / 4, W_pad / 4) mask logits to one result dict per image; ``options`` are
    ``postprocess_image``'s keyword arguments."""
    mask_pred_results = F.interpolate(
        pred_masks,
        size=(padded_size[0], padded_size[1]),
        mode="bilinear",
        align_corners=False,
    )
    processed_results = []
    for mask_cls, mask_pred, image_size, output_size in zip(
        pred_logits, mask_pred_results, image_sizes, output_sizes
    ):
        processed_results.append(
            postprocess_image(
                mask_cls, mask_pred, image_size, output_size[0], output_size[1], **options
            )
        )
    return processed_results
