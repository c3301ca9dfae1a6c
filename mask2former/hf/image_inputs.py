"""Turn user images (PIL, numpy HWC/CHW, torch tensors) into channels-first tensors, and resize
them the way transformers' torchvision image processors do (pure torch, no torchvision)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

try:  # PIL is a dependency of the package, but keep the import failure readable.
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover - pillow is in the package dependencies
    _PILImage = None

# PIL resampling codes (as written in preprocessor_config.json) -> interpolate mode.
_RESAMPLE_MODES = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}
_ALLOWED_CHANNELS = (1, 3, 4)


def _is_pil(obj: Any) -> bool:
    return _PILImage is not None and isinstance(obj, _PILImage.Image)


def _is_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray | torch.Tensor)


def flatten_images(images: Any, expected_ndims: int, name: str) -> list[Any]:
    """A flat list of single images from one image, a batch array, or (nested) lists of them.

    Args:
        images: PIL image, array/tensor with ``expected_ndims`` (one image) or one more (a
            batch), or a list / list of lists of those.
        expected_ndims: 3 for images, 2 for segmentation maps.
        name: argument name used in errors.
    """
    if isinstance(images, list | tuple):
        flat: list[Any] = []
        for item in images:
            if isinstance(item, list | tuple):
                flat.extend(flatten_images(item, expected_ndims, name))
            elif _is_pil(item) or (_is_array(item) and item.ndim == expected_ndims):
                flat.append(item)
            elif _is_array(item) and item.ndim == expected_ndims + 1:
                flat.extend(list(item))
            elif _is_array(item):
                raise ValueError(_describe_bad_input(item, expected_ndims, name))
            else:
                raise TypeError(_describe_bad_input(item, expected_ndims, name))
        if not flat:
            raise ValueError(f"{name}: got an empty list, expected at least one image")
        return flat
    if _is_pil(images) or (_is_array(images) and images.ndim == expected_ndims):
        return [images]
    if _is_array(images) and images.ndim == expected_ndims + 1:
        return list(images)
    if _is_array(images):
        raise ValueError(_describe_bad_input(images, expected_ndims, name))
    raise TypeError(_describe_bad_input(images, expected_ndims, name))


def _describe_bad_input(item: Any, expected_ndims: int, name: str) -> str:
    got = f"{type(item).__name__}"
    if _is_array(item):
        got += f" with shape {tuple(item.shape)}"
    return (
        f"{name}: got {got}; expected PIL images, numpy arrays or torch tensors with "
        f"{expected_ndims} dims (or {expected_ndims + 1} for a batch)"
    )


def _pil_to_numpy(image: Any, do_convert_rgb: bool | None) -> np.ndarray:
    if not do_convert_rgb:
        return np.array(image)
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    if has_alpha:
        rgba = image.convert("RGBA")
        background = _PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(_PILImage.alpha_composite(background, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))


def _channels_first(image: torch.Tensor, input_data_format: str | None, name: str) -> torch.Tensor:
    if input_data_format is None:
        first, last = image.shape[0], image.shape[-1]
        if first in _ALLOWED_CHANNELS and last in _ALLOWED_CHANNELS:
            logger.warning(
                "%s: channel dimension of shape %s is ambiguous; assuming channels first "
                "(pass input_data_format to choose)",
                name,
                tuple(image.shape),
            )
            input_data_format = "channels_first"
        elif first in _ALLOWED_CHANNELS:
            input_data_format = "channels_first"
        elif last in _ALLOWED_CHANNELS:
            input_data_format = "channels_last"
        else:
            raise ValueError(
                f"{name}: cannot find a channel dimension of size 1, 3 or 4 in shape "
                f"{tuple(image.shape)}"
            )
    if input_data_format == "channels_last":
        return image.permute(2, 0, 1)
    if input_data_format != "channels_first":
        raise ValueError(
            f"input_data_format: got {input_data_format!r}, expected 'channels_first' or "
            "'channels_last'"
        )
    return image


def _convert_tensor_to_rgb(image: torch.Tensor) -> torch.Tensor:
    if image.shape[0] == 1:
        return image.expand(3, -1, -1)
    if image.shape[0] == 4:
        is_uint8 = image.dtype == torch.uint8
        pixels = image.to(torch.float32) / 255 if is_uint8 else image
        if not is_uint8 and (pixels.min() < 0 or pixels.max() > 1):
            raise ValueError("RGBA float images must lie in [0, 1] to be converted to RGB")
        rgb = pixels[:3] * pixels[3:] + (1 - pixels[3:])
        return (rgb * 255).round().to(torch.uint8) if is_uint8 else rgb.to(image.dtype)
    return image


def to_chw_tensor(
    image: Any,
    do_convert_rgb: bool | None = None,
    input_data_format: str | None = None,
    name: str = "images",
) -> torch.Tensor:
    """One image -> contiguous (C, H, W) tensor, dtype kept (uint8 stays uint8)."""
    if _is_pil(image):
        image = torch.from_numpy(_pil_to_numpy(image, do_convert_rgb))
        input_data_format = "channels_last"
        from_pil = True
    elif isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        from_pil = False
    elif isinstance(image, torch.Tensor):
        from_pil = False
    else:
        raise TypeError(_describe_bad_input(image, 3, name))
    if image.ndim == 2:
        image = image.unsqueeze(0)
        input_data_format = "channels_first"
    image = _channels_first(image, input_data_format, name)
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(
            f"{name}: got an empty image of shape {tuple(image.shape)} (C, H, W); expected at "
            "least one pixel"
        )
    if image.dtype == torch.bool or image.is_complex():
        raise ValueError(f"{name}: got pixels of dtype {image.dtype}; expected uint8 or float")
    if do_convert_rgb and not from_pil:
        image = _convert_tensor_to_rgb(image)
    return image.contiguous()


def to_map_tensor(segmentation_map: Any, name: str = "segmentation_maps") -> torch.Tensor:
    """One segmentation map (H, W) -> (1, H, W) tensor, dtype kept."""
    if _is_pil(segmentation_map):
        segmentation_map = np.array(segmentation_map)
    if isinstance(segmentation_map, np.ndarray):
        segmentation_map = torch.from_numpy(np.ascontiguousarray(segmentation_map))
    if not isinstance(segmentation_map, torch.Tensor) or segmentation_map.ndim != 2:
        raise ValueError(_describe_bad_input(segmentation_map, 2, name))
    return segmentation_map.unsqueeze(0).contiguous()


def output_size_keep_ratio(
    image_size: tuple[int, int], shortest_edge: int, longest_edge: int | None
) -> tuple[int, int]:
    """Output (h, w) with the short side ``shortest_edge`` unless the long side would pass
    ``longest_edge`` (then the long side is capped), as transformers computes it."""
    height, width = image_size
    size, raw_size = shortest_edge, None
    if longest_edge is not None:
        short, long = float(min(height, width)), float(max(height, width))
        if long / short * size > longest_edge:
            raw_size = longest_edge * short / long
            size = int(round(raw_size))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        scaled = raw_size if raw_size is not None else size
        return int(scaled * height / width), size
    scaled = raw_size if raw_size is not None else size
    return size, int(scaled * width / height)


def target_size(image_size: tuple[int, int], size: dict[str, int], size_divisor: int) -> tuple:
    """Resize target for a ``size`` dict (shortest/longest edge, max height/width, or h/w)."""
    if size.get("shortest_edge") and size.get("longest_edge"):
        new_size = output_size_keep_ratio(image_size, size["shortest_edge"], size["longest_edge"])
    elif size.get("max_height") and size.get("max_width"):
        scale = min(size["max_height"] / image_size[0], size["max_width"] / image_size[1])
        new_size = (int(image_size[0] * scale), int(image_size[1] * scale))
    elif size.get("height") and size.get("width"):
        new_size = (size["height"], size["width"])
    else:
        raise ValueError(
            "size: expected keys ('shortest_edge', 'longest_edge'), ('max_height', 'max_width') "
            f"or ('height', 'width'), got {size}"
        )
    if size_divisor > 0:
        new_size = tuple(int(math.ceil(side / size_divisor) * size_divisor) for side in new_size)
    return new_size


def resize_chw(image: torch.Tensor, size: tuple[int, int], resample: int) -> torch.Tensor:
    """Resize (C, H, W) like torchvision's tensor resize (antialiased bilinear/bicubic).

    uint8 images are resized natively where torch's CPU kernel supports it (bilinear on
    AVX2/AVX512/ARM, as torchvision does), otherwise in float32 then rounded back.
    """
    if resample not in _RESAMPLE_MODES:
        raise ValueError(
            f"resample: got {resample!r}, supported PIL codes are {sorted(_RESAMPLE_MODES)} "
            "(0 nearest, 2 bilinear, 3 bicubic)"
        )
    if tuple(image.shape[-2:]) == tuple(size) or image.numel() == 0:
        return image
    mode = _RESAMPLE_MODES[resample]
    smooth = mode in ("bilinear", "bicubic")
    dtype = image.dtype
    native = [torch.float32, torch.float64]
    if mode == "nearest-exact":
        native.append(torch.uint8)
    elif image.device.type == "cpu" and _native_uint8_resize(mode):
        native.append(torch.uint8)
    batch = image.unsqueeze(0)
    if dtype not in native:
        batch = batch.to(torch.float32)
    out = F.interpolate(
        batch,
        size=list(size),
        mode=mode,
        align_corners=False if smooth else None,
        antialias=smooth,
    )
    if dtype not in native:
        if mode == "bicubic" and dtype == torch.uint8:
            out = out.clamp_(0, 255)
        if not dtype.is_floating_point:
            out = out.round_()
        out = out.to(dtype)
    return out[0]


def _native_uint8_resize(mode: str) -> bool:
    if mode == "bilinear":
        import platform

        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or (
            platform.machine() in ("aarch64", "arm64")
        )
    return mode == "bicubic"
