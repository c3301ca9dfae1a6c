"""Post-processing with transformers' semantics (``Mask2FormerImageProcessor.post_process_*``).

Semantic scoring and the instance (query, class) pairs reuse ``modeling/postprocessing.py``;
the rest differs from the original Mask2Former inference on purpose, to give the same outputs
as transformers: mask logits are first resized to a fixed ``mask_size`` (transformers uses
384 x 384), panoptic segments are kept when their area ratio is strictly above
``overlap_mask_area_threshold`` and measured on score-weighted probabilities, fusing follows
``label_ids_to_fuse``, and segment ids count from 0 (instance) or 1 (panoptic). Every
function takes any object with ``class_queries_logits`` (B, Q, K + 1) and
``masks_queries_logits`` (B, Q, h, w).

The outputs are transformers' (tests/hf/test_hf_postprocessing.py compares them with the
real package) for less work: only the queries an image keeps are resized, the per-segment
areas come from one pass over the winner map, panoptic maps are painted at once and
instance maps without an (N, H, W) temporary.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from mask2former.modeling.mask_upsampling import resize_to_output
from mask2former.modeling.postprocessing import semantic_inference, topk_query_class_pairs

logger = logging.getLogger(__name__)

TRANSFORMERS_MASK_SIZE = (384, 384)


def _logits(outputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Q, K + 1) class logits and (B, Q, h, w) mask logits, in float32."""
    try:
        class_logits = outputs.class_queries_logits
        mask_logits = outputs.masks_queries_logits
    except AttributeError as e:
        raise TypeError(
            "outputs: expected an object with class_queries_logits and masks_queries_logits, "
            f"got {type(outputs).__name__}"
        ) from e
    return class_logits.float(), mask_logits.float()


def _resized(mask_logits: torch.Tensor, mask_size: tuple[int, int] | None) -> torch.Tensor:
    """(..., Q, h, w) mask logits resized to ``mask_size`` (bilinear) as transformers does;
    each query is interpolated on its own, so resizing a subset gives the same values."""
    if mask_size is None:
        return mask_logits
    batched = mask_logits if mask_logits.dim() == 4 else mask_logits[None]
    resized = F.interpolate(batched, size=mask_size, mode="bilinear", align_corners=False)
    return resized if mask_logits.dim() == 4 else resized[0]


def _check_target_sizes(target_sizes: Any, batch_size: int) -> None:
    if target_sizes is not None and len(target_sizes) != batch_size:
        raise ValueError(
            f"target_sizes: got {len(target_sizes)} sizes for a batch of {batch_size} predictions"
        )


def semantic_segmentation(
    outputs: Any,
    target_sizes: list[tuple[int, int]] | None = None,
    return_segmentation_scores: bool = False,
    mask_size: tuple[int, int] | None = TRANSFORMERS_MASK_SIZE,
) -> list[Any]:
    """Class-id maps (H, W) per image (or dicts with ``segmentation`` and
    ``segmentation_scores`` (K, H, W) if ``return_segmentation_scores``)."""
    class_logits, mask_logits = _logits(outputs)
    _check_target_sizes(target_sizes, class_logits.shape[0])
    mask_logits = _resized(mask_logits, mask_size)
    results = []
    for i in range(class_logits.shape[0]):
        image_scores = semantic_inference(class_logits[i], mask_logits[i])
        if target_sizes is not None:
            image_scores = resize_to_output(image_scores, *target_sizes[i])
        # max(0) gives argmax's indices (the first maximum) several times faster on CPU.
        segmentation = image_scores.max(dim=0).indices
        if return_segmentation_scores:
            results.append({"segmentation": segmentation, "segmentation_scores": image_scores})
        else:
            results.append(segmentation)
    return results


def binary_mask_to_rle(mask: torch.Tensor) -> list[int]:
    """COCO-style uncompressed run lengths of a (H, W) binary mask, row-major
    (start, length) pairs of the ones, 1-based starts, as transformers returns them."""
    pixels = mask.flatten()
    zero = torch.zeros(1, device=pixels.device, dtype=pixels.dtype)
    pixels = torch.cat([zero, pixels, zero])
    runs = torch.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return runs.tolist()


def segmentation_to_rle(segmentation: torch.Tensor) -> list[list[int]]:
    """One run-length list per distinct id of ``segmentation`` (increasing ids)."""
    return [
        binary_mask_to_rle(torch.where(segmentation == segment_id, 1, 0))
        for segment_id in torch.unique(segmentation)
    ]


def instance_segmentation(
    outputs: Any,
    threshold: float = 0.5,
    mask_threshold: float = 0.5,
    overlap_mask_area_threshold: float = 0.8,
    target_sizes: list[tuple[int, int]] | None = None,
    return_coco_annotation: bool | None = False,
    return_binary_maps: bool | None = False,
    mask_size: tuple[int, int] | None = TRANSFORMERS_MASK_SIZE,
) -> list[dict[str, Any]]:
    """Instances: top-Q (query, class) pairs scored by class probability x mean mask probability
    inside the mask, kept when the score passes ``threshold`` and the mask is not empty.

    As in transformers, masks are binarized at probability 0.5 whatever ``mask_threshold`` and
    ``overlap_mask_area_threshold`` say (both accepted for API parity). Per image:
    ``segmentation`` (H, W) with instance ids from 0 and -1 for background (a later instance
    covers an earlier one; RLE lists with ``return_coco_annotation``, (N, H, W) binary maps
    with ``return_binary_maps``) and ``segments_info`` (id, label_id, was_fused, score).
    """
    del mask_threshold, overlap_mask_area_threshold
    if return_coco_annotation and return_binary_maps:
        raise ValueError("return_coco_annotation and return_binary_maps cannot both be True")
    class_logits, mask_logits = _logits(outputs)
    batch_size, num_queries = class_logits.shape[:2]
    _check_target_sizes(target_sizes, batch_size)
    results = []
    for i in range(batch_size):
        scores, labels, queries = topk_query_class_pairs(class_logits[i], num_queries)
        distinct, rows = torch.unique(queries, return_inverse=True)
        pair_logits = _resized(mask_logits[i][distinct], mask_size)[rows]  # (N, H, W)
        binary = (pair_logits > 0).float()
        # transformers' formula on the same (N, H, W) layout: the same float32 scores.
        mask_scores = pair_logits.sigmoid_().flatten(1).mul_(binary.flatten(1)).sum(1) / (
            binary.flatten(1).sum(1) + 1e-6
        )
        pair_scores = (scores * mask_scores).tolist()
        height_width = tuple(binary.shape[-2:]) if target_sizes is None else target_sizes[i]
        # Score first (as a Python float comparison), then emptiness at the output size.
        candidates = [j for j, score in enumerate(pair_scores) if score >= threshold]
        binary = binary[candidates]
        if target_sizes is not None and candidates:
            binary = F.interpolate(binary[None], size=target_sizes[i], mode="nearest")[0]
        nonempty = binary.flatten(1).amax(1).gt(0).tolist() if candidates else []
        kept = [j for j, keep in zip(candidates, nonempty) if keep]
        kept_rows = [k for k, keep in enumerate(nonempty) if keep]
        segmentation = _paint_instances(binary, kept_rows, height_width)
        label_list = labels.tolist()
        segments = [
            {
                "id": segment_id,
                "label_id": label_list[j],
                "was_fused": False,
                "score": round(pair_scores[j], 6),
            }
            for segment_id, j in enumerate(kept)
        ]
        if return_coco_annotation:
            segmentation = segmentation_to_rle(segmentation)
        if return_binary_maps and kept:
            segmentation = binary[kept_rows]
        results.append({"segmentation": segmentation, "segments_info": segments})
    return results


def _paint_instances(
    binary: torch.Tensor, rows: list[int], height_width: tuple[int, int]
) -> torch.Tensor:
    """(H, W) float map of instance ids: at each pixel the position in ``rows`` of the last of
    those (N, H, W) binary maps covering it (as painting them in order gives), -1 where none
    does. Painted map by map: no (N, H, W) temporary."""
    segmentation = torch.full(height_width, -1.0, device=binary.device)
    for instance_id, row in enumerate(rows):
        segmentation.masked_fill_(binary[row].bool(), instance_id)
    return segmentation


def _panoptic_segments(
    mask_probs: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_threshold: float,
    overlap_mask_area_threshold: float,
    label_ids_to_fuse: set[int],
    target_size: tuple[int, int] | None,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Paint kept queries by argmax of score-weighted probabilities; drop a query whose painted
    area is not above ``overlap_mask_area_threshold`` of its own (weighted) mask.

    Args:
        mask_probs: (N, h, w) mask probabilities of the kept queries (overwritten).
        scores: (N,) their class probabilities.
        labels: (N,) their classes.
    """
    if target_size is not None:
        mask_probs = resize_to_output(mask_probs, *target_size)
    num_kept = mask_probs.shape[0]
    weighted = mask_probs.mul_(scores.view(-1, 1, 1))
    # max(0) gives argmax's indices (the first maximum) several times faster on CPU.
    owner = weighted.max(0).indices  # (H, W)
    painted_areas = torch.bincount(owner.flatten(), minlength=num_kept)
    own_areas = (weighted >= mask_threshold).flatten(1).sum(1)
    # The ratio as transformers computes it (int64 / int64 -> float32), for the same decisions.
    ratios = (painted_areas / own_areas).tolist()
    segment_of_query = [0] * num_kept
    segments: list[dict[str, Any]] = []
    fused_ids: dict[int, int] = {}
    current_id = 0
    for k, (label, painted, own, ratio, score) in enumerate(
        zip(labels.tolist(), painted_areas.tolist(), own_areas.tolist(), ratios, scores.tolist())
    ):
        if painted == 0 or own == 0 or not ratio > overlap_mask_area_threshold:
            continue
        if label in fused_ids:
            current_id = fused_ids[label]
        else:
            current_id += 1
        segment_of_query[k] = current_id
        should_fuse = label in label_ids_to_fuse
        segments.append(
            {
                "id": current_id,
                "label_id": label,
                "was_fused": should_fuse,
                "score": round(score, 6),
            }
        )
        if should_fuse:
            fused_ids[label] = current_id
    segment_ids = torch.tensor(segment_of_query, dtype=torch.int32, device=owner.device)
    return segment_ids[owner], segments


def panoptic_segmentation(
    outputs: Any,
    threshold: float = 0.5,
    mask_threshold: float = 0.5,
    overlap_mask_area_threshold: float = 0.8,
    label_ids_to_fuse: set[int] | None = None,
    target_sizes: list[tuple[int, int]] | None = None,
    mask_size: tuple[int, int] | None = TRANSFORMERS_MASK_SIZE,
) -> list[dict[str, Any]]:
    """Panoptic maps: queries whose best class is not no-object and whose probability passes
    ``threshold``; classes in ``label_ids_to_fuse`` share one segment id. Per image:
    ``segmentation`` (H, W) int32 ids from 1 (float -1 everywhere when nothing is kept) and
    ``segments_info`` (id, label_id, was_fused, score)."""
    if label_ids_to_fuse is None:
        logger.warning("label_ids_to_fuse unset: no instance will be fused")
        label_ids_to_fuse = set()
    class_logits, mask_logits = _logits(outputs)
    batch_size, num_labels = class_logits.shape[0], class_logits.shape[-1] - 1
    _check_target_sizes(target_sizes, batch_size)
    scores, labels = class_logits.softmax(dim=-1).max(-1)
    results = []
    for i in range(batch_size):
        keep = labels[i].ne(num_labels) & (scores[i] > threshold)
        target_size = target_sizes[i] if target_sizes is not None else None
        if not keep.any():
            if target_size is not None:
                height, width = target_size
            else:
                height, width = mask_size if mask_size is not None else mask_logits.shape[-2:]
            results.append({"segmentation": torch.zeros((height, width)) - 1, "segments_info": []})
            continue
        # Only the kept queries are resized and turned into probabilities.
        segmentation, segments = _panoptic_segments(
            _resized(mask_logits[i][keep], mask_size).sigmoid_(),
            scores[i][keep],
            labels[i][keep],
            mask_threshold,
            overlap_mask_area_threshold,
            label_ids_to_fuse,
            target_size,
        )
        results.append({"segmentation": segmentation, "segments_info": segments})
    return results
