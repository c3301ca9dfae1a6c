"""Post-processing with transformers' semantics (``Mask2FormerImageProcessor.post_process_*``).

Semantic and instance scoring reuse ``modeling/postprocessing.py``; the rest differs from the
original Mask2Former inference on purpose, to give the same outputs as transformers: mask
logits are first resized to a fixed ``mask_size`` (transformers uses 384 x 384), panoptic
segments are kept when their area ratio is strictly above ``overlap_mask_area_threshold``
and measured on score-weighted probabilities, fusing follows ``label_ids_to_fuse``, and
segment ids count from 0 (instance) or 1 (panoptic). Every function takes any object with
``class_queries_logits`` (B, Q, K + 1) and ``masks_queries_logits`` (B, Q, h, w).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from mask2former.modeling.postprocessing import instance_inference, semantic_inference

logger = logging.getLogger(__name__)

TRANSFORMERS_MASK_SIZE = (384, 384)


def _logits(outputs: Any, mask_size: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        class_logits = outputs.class_queries_logits
        mask_logits = outputs.masks_queries_logits
    except AttributeError as e:
        raise TypeError(
            "outputs: expected an object with class_queries_logits and masks_queries_logits, "
            f"got {type(outputs).__name__}"
        ) from e
    if mask_size is not None:
        mask_logits = F.interpolate(
            mask_logits, size=mask_size, mode="bilinear", align_corners=False
        )
    return class_logits, mask_logits


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
    class_logits, mask_logits = _logits(outputs, mask_size)
    _check_target_sizes(target_sizes, class_logits.shape[0])
    results = []
    for i in range(class_logits.shape[0]):
        image_scores = semantic_inference(class_logits[i], mask_logits[i])
        if target_sizes is not None:
            image_scores = F.interpolate(
                image_scores[None], size=target_sizes[i], mode="bilinear", align_corners=False
            )[0]
        segmentation = image_scores.argmax(dim=0)
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
    (``instance_inference``), kept when the score passes ``threshold`` and the mask is not empty.

    As in transformers, masks are binarized at probability 0.5 whatever ``mask_threshold`` and
    ``overlap_mask_area_threshold`` say (both accepted for API parity). Per image:
    ``segmentation`` (H, W) with instance ids from 0 and -1 for background (RLE lists with
    ``return_coco_annotation``, (N, H, W) binary maps with ``return_binary_maps``) and
    ``segments_info`` (id, label_id, was_fused, score).
    """
    del mask_threshold, overlap_mask_area_threshold
    if return_coco_annotation and return_binary_maps:
        raise ValueError("return_coco_annotation and return_binary_maps cannot both be True")
    class_logits, mask_logits = _logits(outputs, mask_size)
    batch_size, num_queries = class_logits.shape[:2]
    _check_target_sizes(target_sizes, batch_size)
    results = []
    for i in range(batch_size):
        instances = instance_inference(
            class_logits[i], mask_logits[i], test_topk_per_image=num_queries
        )
        binary = instances.pred_masks
        height_width = tuple(binary.shape[-2:]) if target_sizes is None else target_sizes[i]
        segmentation = torch.zeros(height_width) - 1
        if target_sizes is not None:
            binary = F.interpolate(binary[None], size=target_sizes[i], mode="nearest")[0]
        instance_maps, segments = [], []
        for j in range(num_queries):
            score = instances.scores[j].item()
            if score >= threshold and not torch.all(binary[j] == 0):
                segment_id = len(segments)
                segmentation[binary[j] == 1] = segment_id
                segments.append(
                    {
                        "id": segment_id,
                        "label_id": instances.pred_classes[j].item(),
                        "was_fused": False,
                        "score": round(score, 6),
                    }
                )
                instance_maps.append(binary[j])
        if return_coco_annotation:
            segmentation = segmentation_to_rle(segmentation)
        if return_binary_maps and instance_maps:
            segmentation = torch.stack(instance_maps, dim=0)
        results.append({"segmentation": segmentation, "segments_info": segments})
    return results


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
    area is not above ``overlap_mask_area_threshold`` of its own (weighted) mask."""
    if target_size is not None:
        mask_probs = F.interpolate(
            mask_probs[None], size=target_size, mode="bilinear", align_corners=False
        )[0]
    height, width = mask_probs.shape[-2:]
    segmentation = torch.zeros((height, width), dtype=torch.int32, device=mask_probs.device)
    weighted = mask_probs * scores.view(-1, 1, 1)
    owner = weighted.argmax(0)
    segments: list[dict[str, Any]] = []
    fused_ids: dict[int, int] = {}
    current_id = 0
    for k in range(labels.shape[0]):
        label = labels[k].item()
        painted = owner == k
        painted_area = painted.sum()
        own_area = (weighted[k] >= mask_threshold).sum()
        if painted_area == 0 or own_area == 0:
            continue
        if not (painted_area / own_area).item() > overlap_mask_area_threshold:
            continue
        if label in fused_ids:
            current_id = fused_ids[label]
        else:
            current_id += 1
        segmentation[painted] = current_id
        should_fuse = label in label_ids_to_fuse
        segments.append(
            {
                "id": current_id,
                "label_id": label,
                "was_fused": should_fuse,
                "score": round(scores[k].item(), 6),
            }
        )
        if should_fuse:
            fused_ids[label] = current_id
    return segmentation, segments


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
    class_logits, mask_logits = _logits(outputs, mask_size)
    batch_size, num_labels = class_logits.shape[0], class_logits.shape[-1] - 1
    _check_target_sizes(target_sizes, batch_size)
    mask_probs = mask_logits.sigmoid()
    scores, labels = class_logits.softmax(dim=-1).max(-1)
    results = []
    for i in range(batch_size):
        keep = labels[i].ne(num_labels) & (scores[i] > threshold)
        target_size = target_sizes[i] if target_sizes is not None else None
        if not keep.any():
            height, width = target_size if target_size is not None else mask_probs.shape[-2:]
            results.append({"segmentation": torch.zeros((height, width)) - 1, "segments_info": []})
            continue
        segmentation, segments = _panoptic_segments(
            mask_probs[i][keep],
            scores[i][keep],
            labels[i][keep],
            mask_threshold,
            overlap_mask_area_threshold,
            label_ids_to_fuse,
            target_size,
        )
        results.append({"segmentation": segmentation, "segments_info": segments})
    return results
