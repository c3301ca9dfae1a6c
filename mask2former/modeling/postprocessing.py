"""Mask2Former inference post-processing as pure functions (tensors and plain arguments).

Shared by the detectron2-style ``MaskFormer`` meta-architecture and the transformers-style
image processor. Notation: Q queries, K classes (the class logits have K + 1 entries, the
last being "no object"), masks are logits before the sigmoid.

Full-resolution masks are the cost: ``postprocess_batch`` upsamples each image's masks once,
straight to the unpadded image (``upsample_masks``), takes their sigmoid once, and gives
panoptic and instance inference only the queries they keep. The results equal those of the
straightforward order (upsample the whole batch to the padded size, crop, resize, one task
after the other), which tests/modeling/test_postprocessing_equivalence.py checks. The
per-task functions live in ``postprocessing_tasks.py`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch

from mask2former.modeling.mask_upsampling import (
    resize_to_output,
    sem_seg_postprocess,
    upsample_masks,
)
from mask2former.modeling.postprocessing_tasks import (
    instance_inference,
    instances_from_masks,
    panoptic_inference,
    panoptic_queries,
    panoptic_segments,
    semantic_inference,
    semantic_scores,
    topk_query_class_pairs,
)

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
    panoptic = panoptic_queries(mask_cls, object_mask_threshold) if panoptic_on else None
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
        result["sem_seg"] = semantic_scores(mask_cls, mask_probs)
    if panoptic is not None:
        scores, labels, queries = panoptic
        result["panoptic_seg"] = panoptic_segments(
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
        result["instances"] = instances_from_masks(
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
