"""``MaskFormer``: the meta-architecture tying backbone, segmentation head and criterion.

It takes detectron2-style batched inputs, returns weighted losses in training and
per-image semantic / panoptic / instance results in inference.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import nn

from mask2former.config import configurable
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.backbone.build import build_backbone
from mask2former.modeling.criterion import SetCriterion, build_criterion
from mask2former.modeling.heads.mask_former_head import build_sem_seg_head
from mask2former.modeling.inference_amp import inference_autocast, inference_dtype_from_config
from mask2former.modeling.postprocessing import postprocess_batch
from mask2former.modeling.registry import META_ARCH_REGISTRY
from mask2former.structures import ImageList, Instances
from mask2former.utils import cpu_caching


def _thing_ids_from_metadata(dataset_names: Sequence[str]) -> list[int] | None:
    """Contiguous thing ids of the first training dataset, or None when unknown."""
    if len(dataset_names) == 0:
        return None
    # Imported here: the data package is optional for model construction.
    from mask2former.data.catalog import MetadataCatalog

    mapping = MetadataCatalog.get(dataset_names[0]).get("thing_dataset_id_to_contiguous_id")
    return None if mapping is None else sorted(int(v) for v in mapping.values())


@META_ARCH_REGISTRY.register()
class MaskFormer(nn.Module):
    """Mask classification model for semantic, instance and panoptic segmentation."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        criterion: SetCriterion,
        num_queries: int,
        object_mask_threshold: float,
        overlap_threshold: float,
        thing_ids: Collection[int] | None,
        size_divisibility: int,
        sem_seg_postprocess_before_inference: bool,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        semantic_on: bool,
        panoptic_on: bool,
        instance_on: bool,
        test_topk_per_image: int,
        inference_dtype: torch.dtype | None = None,
    ) -> None:
        """
        Args:
            backbone: feature extractor following the ``Backbone`` interface.
            sem_seg_head: maps backbone features to a ``MaskFormerHeadOutput`` (read as
                {"pred_logits", "pred_masks", "aux_outputs"}); has ``num_classes``.
            criterion: training losses; ``criterion.weigh`` applies their weights.
            num_queries: number of object queries Q.
            object_mask_threshold: panoptic: minimum class probability of a kept query.
            overlap_threshold: panoptic: minimum visible fraction of a kept query's mask.
            thing_ids: contiguous ids of the thing classes (panoptic inference, and the
                instance filter when panoptic is on); None if unknown.
            size_divisibility: pad inputs to a multiple of this; < 0 takes the backbone's.
            sem_seg_postprocess_before_inference: resize masks to the output size before
                inference (required for panoptic / instance) instead of after.
            pixel_mean: per-channel mean subtracted from the input image.
            pixel_std: per-channel std the input image is divided by.
            semantic_on: return "sem_seg" in inference.
            panoptic_on: return "panoptic_seg" in inference.
            instance_on: return "instances" in inference.
            test_topk_per_image: instance inference keeps this many (query, class) pairs.
            inference_dtype: in eval mode, run the network under ``torch.autocast`` in this
                dtype (bfloat16, or float16 on CUDA); None runs it in the parameters' dtype.
                Post-processing gets float32 outputs either way.
        """
        super().__init__()
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(
                f"pixel_mean has {len(pixel_mean)} values but pixel_std has {len(pixel_std)}"
            )
        if not semantic_on and not sem_seg_postprocess_before_inference:
            raise ValueError(
                "sem_seg_postprocess_before_inference must be True when semantic_on is False"
            )
        if num_queries < 1 or test_topk_per_image < 1:
            raise ValueError(
                f"num_queries {num_queries} (MODEL.MASK_FORMER.NUM_OBJECT_QUERIES) and "
                f"test_topk_per_image {test_topk_per_image} (TEST.DETECTIONS_PER_IMAGE) must "
                "be at least 1"
            )
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.criterion = criterion
        self.num_queries = num_queries
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.thing_ids = None if thing_ids is None else sorted(int(i) for i in thing_ids)
        if size_divisibility < 0:
            size_divisibility = self.backbone.size_divisibility
        self.size_divisibility = size_divisibility
        self.sem_seg_postprocess_before_inference = sem_seg_postprocess_before_inference
        # Not persistent: original checkpoints do not hold them.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.semantic_on = semantic_on
        self.panoptic_on = panoptic_on
        self.instance_on = instance_on
        self.test_topk_per_image = test_topk_per_image
        self.inference_dtype = inference_dtype

    @classmethod
    def from_config(cls, cfg) -> dict[str, Any]:
        mf = cfg.MODEL.MASK_FORMER
        backbone = build_backbone(cfg)
        sem_seg_head = build_sem_seg_head(cfg, backbone.output_shape())

        criterion = build_criterion(
            cfg, sem_seg_head.num_classes, num_aux_outputs=sem_seg_head.num_aux_outputs
        )
        return {
            "backbone": backbone,
            "sem_seg_head": sem_seg_head,
            "criterion": criterion,
            "num_queries": mf.NUM_OBJECT_QUERIES,
            "object_mask_threshold": mf.TEST.OBJECT_MASK_THRESHOLD,
            "overlap_threshold": mf.TEST.OVERLAP_THRESHOLD,
            "thing_ids": _thing_ids_from_metadata(cfg.DATASETS.TRAIN),
            "size_divisibility": mf.SIZE_DIVISIBILITY,
            "sem_seg_postprocess_before_inference": (
                mf.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE
                or mf.TEST.PANOPTIC_ON
                or mf.TEST.INSTANCE_ON
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "semantic_on": mf.TEST.SEMANTIC_ON,
            "instance_on": mf.TEST.INSTANCE_ON,
            "panoptic_on": mf.TEST.PANOPTIC_ON,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "inference_dtype": inference_dtype_from_config(cfg),
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _check_image(self, index: int, image: Any) -> None:
        """Raise a ValueError unless ``image`` is a (C, H, W) uint8 or float tensor."""
        num_channels = self.pixel_mean.shape[0]
        expected = f"a ({num_channels}, H, W) uint8 or floating-point torch.Tensor"
        if not isinstance(image, torch.Tensor):
            raise ValueError(
                f"batched_inputs[{index}]['image'] must be {expected}, got {type(image).__name__}"
            )
        if image.dim() != 3 or image.shape[0] != num_channels:
            raise ValueError(
                f"batched_inputs[{index}]['image'] must be {expected} (channels first), "
                f"got shape {tuple(image.shape)}"
            )
        if image.dtype != torch.uint8 and not image.is_floating_point():
            raise ValueError(
                f"batched_inputs[{index}]['image'] must be {expected}, got dtype {image.dtype}"
            )
        if image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(
                f"batched_inputs[{index}]['image'] must be {expected} with at least one pixel, "
                f"got shape {tuple(image.shape)}"
            )

    def preprocess_images(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        """Validate, normalise ((x - mean) / std) and pad the input images.

        Returns:
            ImageList whose tensor is (B, C, H_pad, W_pad), padded with 0 after normalising.
        """
        if not isinstance(batched_inputs, (list, tuple)) or len(batched_inputs) == 0:
            got = type(batched_inputs).__name__
            if isinstance(batched_inputs, (list, tuple)):
                got = f"an empty {got}"
            raise ValueError(
                f"batched_inputs must be a non-empty list of dicts with an 'image' entry, got {got}"
            )
        images = []
        for index, inputs in enumerate(batched_inputs):
            if "image" not in inputs:
                raise ValueError(
                    f"batched_inputs[{index}] has no 'image' entry; keys: {sorted(inputs)}"
                )
            self._check_image(index, inputs["image"])
            image = inputs["image"].to(device=self.device, dtype=self.pixel_mean.dtype)
            images.append((image - self.pixel_mean) / self.pixel_std)
        return ImageList.from_tensors(images, self.size_divisibility)

    def forward(self, batched_inputs: list[dict[str, Any]]):
        """Training losses or inference results.

        Args:
            batched_inputs: one dict per image with "image" ((C, H, W) uint8 or float, in the
                channel order of ``pixel_mean``), in training "instances" (Instances with
                ``gt_classes`` (T,) and ``gt_masks`` (T, H, W)), in inference optionally
                "height" and "width" (output size; defaults to the input size).

        Returns:
            Training: dict of weighted scalar losses. Inference: one dict per image with
            "sem_seg" (K, H, W), "panoptic_seg" ((H, W) int32 ids, segments_info) and
            "instances" (Instances) as switched on.
        """
        if not self.training:
            # Large inference temporaries reuse already-mapped memory (utils/cpu_caching.py).
            with cpu_caching.caching(self.device):
                return self._inference(batched_inputs)
        images = self.preprocess_images(batched_inputs)
        outputs = self.sem_seg_head(self.backbone(images.tensor))
        missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
        if missing:
            raise ValueError(
                f"training needs an 'instances' entry (gt_classes, gt_masks) in every "
                f"input; batched_inputs{missing} have none"
            )
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        targets = self.prepare_targets(gt_instances, images)
        return self.criterion.weigh(self.criterion(outputs, targets))

    def _inference(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        images = self.preprocess_images(batched_inputs)
        autocast_dtype = self.inference_dtype
        # The semantic product follows TEST.AMP, or a caller's own autocast region.
        semantic_dtype = autocast_dtype
        if semantic_dtype is None and torch.is_autocast_enabled(self.device.type):
            semantic_dtype = torch.get_autocast_dtype(self.device.type)
        with inference_autocast(self.device.type, autocast_dtype):
            features = self.backbone(images.tensor)
            outputs = self.sem_seg_head(features)

        # Reduced-precision network outputs reach post-processing as float32, and a caller's
        # own autocast region does not reach into it (thresholds, argmaxes, mask products);
        # only the semantic product follows ``semantic_dtype``.
        outputs = {name: outputs[name].float() for name in ("pred_logits", "pred_masks")}
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self._postprocess(outputs, images, batched_inputs, semantic_dtype)

    def _postprocess(
        self,
        outputs: dict[str, torch.Tensor],
        images: ImageList,
        batched_inputs: list[dict],
        semantic_dtype: torch.dtype | None = None,
    ) -> list[dict[str, Any]]:
        return postprocess_batch(
            outputs["pred_logits"],
            outputs["pred_masks"],
            (images.tensor.shape[-2], images.tensor.shape[-1]),
            images.image_sizes,
            [
                (inputs.get("height", image_size[0]), inputs.get("width", image_size[1]))
                for inputs, image_size in zip(batched_inputs, images.image_sizes)
            ],
            semantic_on=self.semantic_on,
            panoptic_on=self.panoptic_on,
            instance_on=self.instance_on,
            sem_seg_postprocess_before_inference=self.sem_seg_postprocess_before_inference,
            object_mask_threshold=self.object_mask_threshold,
            overlap_threshold=self.overlap_threshold,
            test_topk_per_image=self.test_topk_per_image,
            thing_ids=self.thing_ids,
            # Under TEST.AMP the semantic product is a reduced-precision GEMM like the
            # network's; thresholds, argmaxes and the other tasks stay float32.
            semantic_dtype=semantic_dtype,
        )

    def prepare_targets(
        self, targets: list[Instances], images: ImageList
    ) -> list[dict[str, torch.Tensor]]:
        """Criterion targets with the gt masks zero-padded to the padded image size.

        Returns:
            Per image {"labels": (T,) int64, "masks": (T, H_pad, W_pad)}.
        """
        h_pad, w_pad = images.tensor.shape[-2:]
        new_targets = []
        for index, targets_per_image in enumerate(targets):
            if not (targets_per_image.has("gt_classes") and targets_per_image.has("gt_masks")):
                raise ValueError(
                    f"batched_inputs[{index}]['instances'] needs fields gt_classes and gt_masks, "
                    f"has {sorted(targets_per_image.get_fields())}"
                )
            gt_masks = targets_per_image.gt_masks
            gt_masks = gt_masks.tensor if hasattr(gt_masks, "tensor") else gt_masks
            padded_masks = gt_masks.new_zeros((gt_masks.shape[0], h_pad, w_pad))
            padded_masks[:, : gt_masks.shape[1], : gt_masks.shape[2]] = gt_masks
            new_targets.append({"labels": targets_per_image.gt_classes, "masks": padded_masks})
        return new_targets
