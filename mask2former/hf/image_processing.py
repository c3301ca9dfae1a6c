"""``Mask2FormerImageProcessor``: transformers' processor of the same name, without transformers.

Pre-processing gives the same tensors as transformers' (torchvision-backed) processor:
resize (shortest/longest edge, size_divisor), rescale, normalize, pad + ``pixel_mask``, and
segmentation maps turned into per-segment binary ``mask_labels`` with ``class_labels``.
Post-processing (semantic / instance / panoptic) lives in ``hf/post_processing.py``.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mask2former.hf import post_processing
from mask2former.hf.image_inputs import (
    flatten_images,
    resize_chw,
    target_size,
    to_chw_tensor,
    to_map_tensor,
)
from mask2former.hf.json_settings import (
    read_json,
    save_directory_file,
    settings_file,
    split_known,
    to_json_string,
    write_json,
)
from mask2former.utils import cpu_caching

logger = logging.getLogger(__name__)

PROCESSOR_NAME = "preprocessor_config.json"
IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
_NEAREST = 0
# Keys that transformers writes but that do not configure processing.
_IGNORED_KEYS = {"image_processor_type", "feature_extractor_type", "processor_class", "_max_size"}
# Older transformers' names of settings (``max_size`` is folded into ``size``).
_RENAMED_KEYS = {"reduce_labels": "do_reduce_labels", "size_divisibility": "size_divisor"}


def _setting_names() -> list[str]:
    return [f.name for f in fields(Mask2FormerImageProcessor)]


class BatchFeature(dict):
    """A dict whose keys are also attributes (``inputs.pixel_values``), with ``.to(device)``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(f"BatchFeature has no key {name!r} (keys: {list(self)})") from e

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.to(*args, **kwargs)
            if isinstance(value, list):
                return [move(item) for item in value]
            return value

        return BatchFeature({key: move(value) for key, value in self.items()})


def segmentation_map_to_masks(
    segmentation_map: torch.Tensor,
    instance_id_to_semantic_id: dict[int, int] | None = None,
    ignore_index: int | None = None,
    do_reduce_labels: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a (H, W) map into binary masks, one per distinct id, with their class ids.

    Returns:
        masks (N, H, W) float32 and labels (N,) int64, ids in increasing order, ``ignore_index``
        dropped. With ``do_reduce_labels`` 0 becomes ``ignore_index`` and other ids drop by 1.
    """
    if do_reduce_labels and ignore_index is None:
        raise ValueError("do_reduce_labels=True needs ignore_index (the id given to label 0)")
    if do_reduce_labels:
        segmentation_map = torch.where(segmentation_map == 0, ignore_index, segmentation_map - 1)
    ids = torch.unique(segmentation_map)
    if ignore_index is not None:
        ids = ids[ids != ignore_index]
    if len(ids):
        masks = torch.stack([segmentation_map == i for i in ids], dim=0)
    else:
        masks = torch.zeros((0, *segmentation_map.shape), device=segmentation_map.device)
    if instance_id_to_semantic_id is None:
        return masks.float(), ids.long()
    labels = torch.zeros(ids.shape[0], device=segmentation_map.device)
    offset = 1 if do_reduce_labels else 0
    for i, instance_id in enumerate(ids.tolist()):
        key = instance_id + offset
        if key not in instance_id_to_semantic_id:
            raise KeyError(
                f"instance_id_to_semantic_id has no entry for instance id {key} found in the map"
            )
        labels[i] = instance_id_to_semantic_id[key] - offset
    return masks.float(), labels.long()


def _size_dict(size: Any, max_size: int | None = None) -> dict[str, int]:
    """transformers' size dict from an int (shortest edge), (height, width) or a dict."""
    if isinstance(size, dict):
        return dict(size)
    if isinstance(size, int):
        result = {"shortest_edge": size}
        if max_size is not None:
            result["longest_edge"] = max_size
        return result
    if isinstance(size, list | tuple) and len(size) == 2:
        return {"height": int(size[0]), "width": int(size[1])}
    raise ValueError(f"size: got {size!r}, expected an int, (height, width) or a dict")


@dataclass(kw_only=True, eq=False)
class Mask2FormerImageProcessor:
    """Prepare images (and segmentation maps) for Mask2Former, and post-process its outputs.

    Args (all optional, defaults as transformers'):
        do_resize, size ({"shortest_edge": 800, "longest_edge": 1333}; an int or (height,
        width) is converted), size_divisor (32), resample (2 = bilinear), do_rescale,
        rescale_factor (1/255), do_normalize, image_mean / image_std (ImageNet), ignore_index
        (None), do_reduce_labels (False), num_labels (None), pad_size (None: pad to the
        largest image), do_convert_rgb (None).
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values", "pixel_mask"]

    do_resize: bool = True
    size: dict[str, int] = field(
        default_factory=lambda: {"shortest_edge": 800, "longest_edge": 1333}
    )
    size_divisor: int = 32
    resample: int = 2
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_STD))
    ignore_index: int | None = None
    do_reduce_labels: bool = False
    num_labels: int | None = None
    pad_size: dict[str, int] | None = None
    do_convert_rgb: bool | None = None

    def __post_init__(self) -> None:
        self.size = _size_dict(self.size)
        if self.pad_size is not None:
            self.pad_size = _size_dict(self.pad_size)
        if self.do_rescale and self.rescale_factor is None:
            raise ValueError("rescale_factor must be set when do_rescale=True")
        if self.do_normalize and (self.image_mean is None or self.image_std is None):
            raise ValueError("image_mean and image_std must be set when do_normalize=True")

    def with_settings(self, **overrides: Any) -> Mask2FormerImageProcessor:
        """A copy with some settings changed (per-call overrides of ``preprocess``).

        Raises:
            TypeError: a name that is not a setting (the message lists the valid ones).
        """
        if not overrides:
            return self
        split_known(overrides, _setting_names(), (), "Mask2FormerImageProcessor")
        return replace(self, **overrides)

    # ---- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        result = {k: v for k, v in asdict(self).items() if v is not None}
        result["image_processor_type"] = type(self).__name__
        return dict(sorted(result.items()))

    @classmethod
    def from_dict(cls, processor_dict: dict[str, Any], **kwargs: Any) -> Mask2FormerImageProcessor:
        """Build from a ``preprocessor_config.json`` dict (ours or transformers', also the
        older names ``max_size``, ``reduce_labels`` and ``size_divisibility``); ``kwargs``
        override it.

        Raises:
            TypeError: a key that is not a setting (the message lists the valid ones).
        """
        values = dict(copy.deepcopy(processor_dict), **kwargs)
        for old, new in _RENAMED_KEYS.items():
            if old in values:
                values.setdefault(new, values.pop(old))
        max_size = values.pop("max_size", None)
        if "size" in values:
            values["size"] = _size_dict(values["size"], max_size)
        known = split_known(values, _setting_names(), _IGNORED_KEYS, cls.__name__)
        return cls(**known)

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write ``preprocessor_config.json`` into ``save_directory``; returns its path."""
        path = save_directory_file(save_directory, PROCESSOR_NAME)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> Mask2FormerImageProcessor:
        """Load from a directory with ``preprocessor_config.json``, from that file or from a
        Hub model id (through huggingface_hub's cache; ``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``force_download`` are taken from ``kwargs``); the
        other ``kwargs`` override settings."""
        json_file = settings_file(path, PROCESSOR_NAME, kwargs)
        return cls.from_dict(read_json(json_file), **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {to_json_string(self.to_dict())}"

    # ---- pre-processing ------------------------------------------------------------------
    def __call__(self, images: Any, segmentation_maps: Any = None, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, segmentation_maps=segmentation_maps, **kwargs)

    def preprocess(
        self,
        images: Any,
        segmentation_maps: Any = None,
        instance_id_to_semantic_id: list[dict[int, int]] | dict[int, int] | None = None,
        return_tensors: str | None = None,
        input_data_format: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Resize, rescale, normalize and pad ``images``; encode ``segmentation_maps``.

        Args:
            images: one image or a batch (PIL, numpy HWC/CHW, tensor CHW/HWC; lists of them).
            segmentation_maps: one (H, W) map per image (semantic ids, or instance ids with
                ``instance_id_to_semantic_id``).
            instance_id_to_semantic_id: one dict for all images or one per image.
            return_tensors: "pt" stacks pixel_values (B, C, H, W) / pixel_mask (B, H, W);
                None keeps lists; "np" gives numpy arrays.
            input_data_format: "channels_first" / "channels_last" (default: inferred).
            **kwargs: per-call overrides of the processor's settings.

        Returns:
            BatchFeature with pixel_values, pixel_mask and, with maps, mask_labels (list of
            (N_i, H, W) float) and class_labels (list of (N_i,) int64).
        """
        settings = self.with_settings(**kwargs)
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors: got {return_tensors!r}, expected None, 'pt' or 'np'")

        pixels = [
            to_chw_tensor(image, settings.do_convert_rgb, input_data_format)
            for image in flatten_images(images, 3, "images")
        ]
        maps = None
        if segmentation_maps is not None:
            maps = [
                to_map_tensor(m) for m in flatten_images(segmentation_maps, 2, "segmentation_maps")
            ]
            if len(maps) != len(pixels):
                raise ValueError(
                    f"segmentation_maps: got {len(maps)} maps for {len(pixels)} images"
                )
        if settings.do_resize:
            pixels = [settings._resize(image, settings.resample) for image in pixels]
            if maps is not None:
                maps = [settings._resize(m, _NEAREST) for m in maps]
        return settings._finish(pixels, maps, instance_id_to_semantic_id, return_tensors)

    def encode_inputs(
        self,
        pixel_values_list: Any,
        segmentation_maps: Any = None,
        instance_id_to_semantic_id: list[dict[int, int]] | dict[int, int] | None = None,
        ignore_index: int | None = None,
        do_reduce_labels: bool = False,
        return_tensors: str | None = None,
        input_data_format: str | None = None,
    ) -> BatchFeature:
        """Pad already prepared images to the batch's largest size, build ``pixel_mask`` and
        encode the maps (no resize, rescale or normalize)."""
        return self.preprocess(
            pixel_values_list,
            segmentation_maps=segmentation_maps,
            instance_id_to_semantic_id=instance_id_to_semantic_id,
            return_tensors=return_tensors,
            input_data_format=input_data_format,
            do_resize=False,
            do_rescale=False,
            do_normalize=False,
            ignore_index=ignore_index,
            do_reduce_labels=do_reduce_labels,
        )

    def _resize(self, image: torch.Tensor, resample: int) -> torch.Tensor:
        new_size = target_size(tuple(image.shape[-2:]), self.size, self.size_divisor or 0)
        return resize_chw(image, new_size, resample)

    def _finish(
        self,
        pixels: list[torch.Tensor],
        maps: list[torch.Tensor] | None,
        instance_id_to_semantic_id: Any,
        return_tensors: str | None,
    ) -> BatchFeature:
        if self.pad_size is not None:
            pad = self.pad_size
            padded_size = (pad["height"], pad["width"])
        else:
            padded_size = (max(p.shape[-2] for p in pixels), max(p.shape[-1] for p in pixels))
        ignore_index = self.ignore_index
        mask_labels, class_labels = [], []
        if maps is not None:
            for index, segmentation_map in enumerate(maps):
                mapping = instance_id_to_semantic_id
                if isinstance(mapping, list):
                    mapping = mapping[index]
                masks, labels = segmentation_map_to_masks(
                    segmentation_map[0], mapping, ignore_index, self.do_reduce_labels
                )
                mask_labels.append(_pad(masks, padded_size, ignore_index or 0))
                class_labels.append(labels)
        values, pixel_masks = [], []
        for image in pixels:
            image = self._rescale_and_normalize(image)
            pixel_mask = torch.zeros(padded_size, dtype=torch.int64, device=image.device)
            pixel_mask[: image.shape[-2], : image.shape[-1]] = 1
            values.append(_pad(image, padded_size, 0))
            pixel_masks.append(pixel_mask)
        encoded = BatchFeature(pixel_values=values, pixel_mask=pixel_masks)
        if return_tensors == "pt":
            encoded.update(pixel_values=torch.stack(values), pixel_mask=torch.stack(pixel_masks))
        elif return_tensors == "np":
            encoded.update(
                pixel_values=np.stack([v.numpy() for v in values]),
                pixel_mask=np.stack([m.numpy() for m in pixel_masks]),
            )
        if maps is not None:
            encoded.update(mask_labels=mask_labels, class_labels=class_labels)
        return encoded

    def _rescale_and_normalize(self, image: torch.Tensor) -> torch.Tensor:
        # Same arithmetic as transformers: rescaling folded into mean/std when both are on.
        if self.do_normalize:
            mean = torch.tensor(self.image_mean, device=image.device)
            std = torch.tensor(self.image_std, device=image.device)
            if self.do_rescale:
                mean = mean * (1.0 / self.rescale_factor)
                std = std * (1.0 / self.rescale_factor)
            image = image.to(torch.float32)
            return (image - mean.view(-1, 1, 1).to(image.dtype)) / std.view(-1, 1, 1).to(
                image.dtype
            )
        if self.do_rescale:
            return image * self.rescale_factor
        return image

    # ---- post-processing -----------------------------------------------------------------
    def post_process_semantic_segmentation(
        self, outputs: Any, target_sizes: list[tuple[int, int]] | None = None, **kwargs: Any
    ) -> list[torch.Tensor]:
        """See ``post_processing.semantic_segmentation``."""
        with _caching_for(outputs):
            return post_processing.semantic_segmentation(outputs, target_sizes, **kwargs)

    def post_process_instance_segmentation(
        self,
        outputs: Any,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        target_sizes: list[tuple[int, int]] | None = None,
        return_coco_annotation: bool | None = False,
        return_binary_maps: bool | None = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """See ``post_processing.instance_segmentation``."""
        with _caching_for(outputs):
            return post_processing.instance_segmentation(
                outputs,
                threshold=threshold,
                mask_threshold=mask_threshold,
                overlap_mask_area_threshold=overlap_mask_area_threshold,
                target_sizes=target_sizes,
                return_coco_annotation=return_coco_annotation,
                return_binary_maps=return_binary_maps,
                **kwargs,
            )

    def post_process_panoptic_segmentation(
        self,
        outputs: Any,
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
        label_ids_to_fuse: set[int] | None = None,
        target_sizes: list[tuple[int, int]] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """See ``post_processing.panoptic_segmentation``."""
        with _caching_for(outputs):
            return post_processing.panoptic_segmentation(
                outputs,
                threshold=threshold,
                mask_threshold=mask_threshold,
                overlap_mask_area_threshold=overlap_mask_area_threshold,
                label_ids_to_fuse=label_ids_to_fuse,
                target_sizes=target_sizes,
                **kwargs,
            )


def _caching_for(outputs: Any):
    """The caching-allocator scope (utils/cpu_caching.py) for the device of the outputs."""
    masks = getattr(outputs, "masks_queries_logits", None)
    return cpu_caching.caching(masks.device if isinstance(masks, torch.Tensor) else "cpu")


def _pad(tensor: torch.Tensor, padded_size: tuple[int, int], fill: float) -> torch.Tensor:
    """Pad (..., H, W) at the bottom and right to ``padded_size`` with ``fill``."""
    bottom = padded_size[0] - tensor.shape[-2]
    right = padded_size[1] - tensor.shape[-1]
    if bottom < 0 or right < 0:
        raise ValueError(
            f"pad_size {tuple(padded_size)} is smaller than an image of size "
            f"{tuple(tensor.shape[-2:])}"
        )
    if bottom == 0 and right == 0:
        return tensor
    return F.pad(tensor, (0, right, 0, bottom), value=fill)
