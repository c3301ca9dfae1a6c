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
    InstanceBands,
    PanopticBands,
    instance_inference,
    panoptic_inference,
    panoptic_queries,
    semantic_inference,
    semantic_scores,
    topk_query_class_pairs,
)

# Elements of a row band of the kept queries' probabilities (16 MB: mostly in cache, and
# few enough bands that the per-operation overhead stays small).
BAND_ELEMENTS = 1 << 22

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
    semantic_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """The requested results from (Q, K + 1) class logits and ``masks_of(query_ids)``, which
    gives the (n, H, W) float32 mask logits of those queries at the result's resolution
    (all queries for None) in a new tensor (it is overwritten).

    Semantic inference needs every query; otherwise only the queries panoptic and instance
    inference keep are upsampled. The sigmoid is taken once, in place. Panoptic and instance
    inference then go over the probabilities in row bands, so that their gathers and
    temporaries stay in cache instead of filling (N, H, W) tensors.
    """
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
    num_rows = mask_logits.shape[0]

    def rows_of(queries: torch.Tensor) -> torch.Tensor | None:
        """Rows of ``queries`` in ``mask_logits``; None when they are all rows in order."""
        rows = row_of_query[queries]
        in_order = torch.arange(num_rows, device=rows.device)
        return None if rows.numel() == num_rows and torch.equal(rows, in_order) else rows

    instances = instance_rows = None
    if pairs is not None:
        distinct, pair_rows = torch.unique(pairs[2], return_inverse=True)
        instance_rows = rows_of(distinct)
        # Binarized before the logits become probabilities (a bool gather is 4x smaller).
        binary = mask_logits > 0
        if instance_rows is not None:
            binary = binary[instance_rows]
        instances = InstanceBands(pairs[0], pairs[1], pair_rows, binary)
    mask_probs = mask_logits.sigmoid_()  # in place: the logits are not needed any more

    result: dict[str, Any] = {}
    if semantic_on:
        result["sem_seg"] = semantic_scores(mask_cls, mask_probs, semantic_dtype)
    segments = panoptic_rows = None
    if panoptic is not None:
        panoptic_rows = rows_of(panoptic[2])
        segments = PanopticBands(panoptic[0], panoptic[1], output_size)
    if segments is not None or instances is not None:
        gathered = max(
            0 if segments is None else panoptic[2].numel(),
            0 if instances is None else distinct.numel(),
        )
        band_rows = max(1, BAND_ELEMENTS // max(1, gathered * output_size[1]))
        for start in range(0, output_size[0], band_rows):
            band = slice(start, start + band_rows)
            if segments is not None:
                # A copy unless nothing else reads the probabilities afterwards.
                if panoptic_rows is None and instances is None:
                    segments.add(start, mask_probs[:, band])
                else:
                    segments.add(start, _gather_band(mask_probs, panoptic_rows, band))
            if instances is not None:
                instances.add(start, _gather_band(mask_probs, instance_rows, band))
    if segments is not None:
        result["panoptic_seg"] = segments.finish(
            overlap_threshold=overlap_threshold, thing_ids=thing_ids
        )
    if instances is not None:
        result["instances"] = instances.finish()
    return result


def _gather_band(mask_probs: torch.Tensor, rows: torch.Tensor | None, band: slice) -> torch.Tensor:
    """Rows ``rows`` (all for None, as a view) of a row band of (n, H, W) probabilities."""
    # Advanced indexing: index_select on the strided band view is far slower on CPU.
    return mask_probs[:, band] if rows is None else mask_probs[rows, band]


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
    semantic_dtype: torch.dtype | None = None,
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
        semantic_dtype: dtype of the semantic product's operands (e.g. bfloat16 under
            ``TEST.AMP``: the (K, Q) x (Q, H*W) product is then a reduced-precision GEMM with a
            float32 result); None keeps it float32.

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
        semantic_dtype=semantic_dtype,
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
