"""Image reading and per-instance annotation helpers shared by the dataset mappers."""

from __future__ import annotations

import logging
import os
from enum import IntEnum
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from fvcore.transforms.transform import Transform, TransformList
from PIL import Image, UnidentifiedImageError

from mask2former.structures import BitMasks, Boxes, Instances
from mask2former.utils.panoptic_ids import id2rgb, rgb2id

logger = logging.getLogger(__name__)

__all__ = [
    "BoxMode",
    "SizeMismatchError",
    "annotations_to_instances",
    "check_image_size",
    "convert_image_to_rgb",
    "filter_empty_instances",
    "id2rgb",
    "polygons_to_bitmask",
    "read_image",
    "rgb2id",
    "segmentation_to_mask",
    "transform_instance_annotations",
]

_EXIF_ORIENTATION_TAG = 274
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Formats accepted by read_image besides PIL modes; both are decoded through RGB.
_RGB_DERIVED_FORMATS = ("BGR", "YUV-BT.601")
# ITU-R BT.601 RGB -> YUV, as in detectron2.
_RGB_TO_YUV = np.array(
    [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
)


class SizeMismatchError(ValueError):
    """The decoded image size differs from the record's ``height`` / ``width``."""


class BoxMode(IntEnum):
    """Box encodings used in dataset records (values equal detectron2's)."""

    XYXY_ABS = 0
    XYWH_ABS = 1

    @staticmethod
    def convert(box: Any, from_mode: BoxMode, to_mode: BoxMode) -> np.ndarray:
        """Convert a box (4,) or boxes (N, 4) between XYXY and XYWH; returns float64 arrays."""
        arr = np.array(box, dtype=np.float64)
        if BoxMode(from_mode) == BoxMode(to_mode):
            return arr
        flat = arr.reshape(-1, 4)
        if BoxMode(from_mode) == BoxMode.XYWH_ABS:
            flat[:, 2:] += flat[:, :2]
        else:
            flat[:, 2:] -= flat[:, :2]
        return flat.reshape(arr.shape)


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except (OSError, ValueError, SyntaxError):  # malformed EXIF block: keep the pixels as-is
        return image
    method = _EXIF_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _unreadable_reason(file_name: str, error: BaseException) -> str:
    if os.path.isdir(file_name):
        return "it is a directory; expected an image file"
    if os.path.getsize(file_name) == 0:
        return "the file is empty (0 bytes)"
    if file_name.lower().endswith(_VIDEO_SUFFIXES):
        return (
            "it is a video; images are read one file at a time (demo/demo.py --video-input "
            "reads videos)"
        )
    if isinstance(error, UnidentifiedImageError):
        return "not an image format that Pillow can decode"
    return str(error)


def read_image(file_name: str, format: str | None = None) -> np.ndarray:
    """Read an image file into an HWC (or HW for ``format=None`` gray) numpy array.

    EXIF orientation is applied. Grayscale, RGBA, palette and 16-bit inputs are converted to
    ``format``: a PIL mode ("RGB", "L", ...), "BGR", or "YUV-BT.601". As in detectron2, that is
    PIL's conversion: 16/32-bit integer pixels are clipped to 0..255, not rescaled (a model
    trained with detectron2 saw them so). With ``format=None`` the pixels are returned as
    stored (e.g. label maps, 16-bit TIFFs).

    Args:
        file_name: path of the image.
        format: target format, see above.

    Returns:
        uint8 array (H, W, C) for colour formats, (H, W, 1) for "L", float for "YUV-BT.601", or
        the raw array for ``None``.

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file cannot be decoded as an image.
    """
    try:
        with open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Image file not found: {file_name}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise OSError(
            f"Cannot read image file {file_name}: {_unreadable_reason(file_name, e)}"
        ) from e
    image = _apply_exif_orientation(image)
    if format is None:
        return np.asarray(image)
    pil_mode = "RGB" if format in _RGB_DERIVED_FORMATS else format
    try:
        image = image.convert(pil_mode)
    except ValueError as e:
        raise ValueError(f"read_image({file_name!r}): unsupported format {format!r}") from e
    array = np.asarray(image)
    if format == "L":
        return np.expand_dims(array, -1)
    if format == "BGR":
        return array[:, :, ::-1]
    if format == "YUV-BT.601":
        return np.dot(array / 255.0, _RGB_TO_YUV.T)
    return array


def convert_image_to_rgb(image: np.ndarray | torch.Tensor, format: str) -> np.ndarray:
    """Convert an HWC image in ``format`` ("RGB", "BGR", "L") back to an RGB uint8 array."""
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if format == "BGR":
        return np.ascontiguousarray(image[:, :, [2, 1, 0]]).astype(np.uint8)
    if format == "L":
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2).astype(
            np.uint8
        )
    if format == "RGB":
        return image.astype(np.uint8)
    raise ValueError(f"convert_image_to_rgb: unsupported format {format!r}")


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Check the decoded size against the record, and fill ``height``/``width`` if absent."""
    if "width" in dataset_dict or "height" in dataset_dict:
        got = (image.shape[1], image.shape[0])
        expected = (dataset_dict.get("width"), dataset_dict.get("height"))
        if got != expected:
            raise SizeMismatchError(
                f"Image {dataset_dict.get('file_name', '?')} has (width, height) {got}, but its "
                f"record says {expected}. Check the width/height in the annotation."
            )
    dataset_dict.setdefault("width", image.shape[1])
    dataset_dict.setdefault("height", image.shape[0])


def polygons_to_bitmask(polygons: list[np.ndarray | list[float]], height: int, width: int):
    """Rasterise the union of COCO polygons (flat xy lists) into an (H, W) bool array."""
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_util.frPyObjects([np.asarray(p, dtype=np.float64) for p in polygons], height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def transform_instance_annotations(
    annotation: dict, transforms: Transform | TransformList | list, image_size: tuple[int, int]
) -> dict:
    """Apply ``transforms`` to one instance's box and segmentation, in place.

    Polygons stay polygons (list of flat float arrays); RLE becomes an (H, W) uint8 mask. The
    box becomes XYXY_ABS, clipped to ``image_size`` (height, width).
    """
    if isinstance(transforms, (list, tuple)):
        transforms = TransformList(list(transforms))
    bbox = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
    bbox = transforms.apply_box(np.array([bbox]))[0].clip(min=0)
    annotation["bbox"] = np.minimum(bbox, list(image_size + image_size)[::-1])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS
    if "segmentation" in annotation:
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segm]
            annotation["segmentation"] = [
                p.reshape(-1) for p in transforms.apply_polygons(polygons)
            ]
        elif isinstance(segm, dict):
            mask = transforms.apply_segmentation(mask_util.decode(segm))
            if tuple(mask.shape[:2]) != tuple(image_size):
                raise ValueError(
                    f"Transformed RLE mask has shape {mask.shape[:2]}, expected {image_size}"
                )
            annotation["segmentation"] = mask
        else:
            raise ValueError(
                f"Cannot transform a segmentation of type {type(segm).__name__}: expected "
                "polygons (list of flat coordinate lists) or COCO RLE (dict)."
            )
    return annotation


def segmentation_to_mask(segm: Any, height: int, width: int) -> np.ndarray:
    """Polygons (list), COCO RLE (dict) or an (H, W) array -> (H, W) bool mask."""
    if isinstance(segm, list):
        return polygons_to_bitmask(segm, height, width)
    if isinstance(segm, dict):
        return mask_util.decode(segm).astype(bool)
    if isinstance(segm, np.ndarray):
        if segm.ndim != 2:
            raise ValueError(f"A mask segmentation must be 2-D (H, W), got shape {segm.shape}")
        return segm.astype(bool)
    raise ValueError(
        f"Cannot convert a segmentation of type {type(segm).__name__} to a mask: expected "
        "polygons (list), COCO RLE (dict) or an (H, W) numpy array."
    )


def annotations_to_instances(annos: list[dict], image_size: tuple[int, int]) -> Instances:
    """Build ``Instances`` with ``gt_boxes`` (Boxes), ``gt_classes`` (int64) and, when the
    annotations carry segmentations, ``gt_masks`` (BitMasks of shape (N, H, W))."""
    height, width = image_size
    boxes = (
        np.stack([BoxMode.convert(o["bbox"], o["bbox_mode"], BoxMode.XYXY_ABS) for o in annos])
        if annos
        else np.zeros((0, 4))
    )
    target = Instances(image_size)
    target.gt_boxes = Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4))
    target.gt_classes = torch.tensor([int(o["category_id"]) for o in annos], dtype=torch.int64)
    if annos and "segmentation" in annos[0]:
        masks = [segmentation_to_mask(o["segmentation"], height, width) for o in annos]
        target.gt_masks = BitMasks(torch.from_numpy(np.stack(masks)))
    return target


def filter_empty_instances(
    instances: Instances, by_box: bool = True, by_mask: bool = True, box_threshold: float = 1e-5
) -> Instances:
    """Drop instances whose box is degenerate (side <= ``box_threshold``) or mask is empty."""
    keep = torch.ones(len(instances), dtype=torch.bool)
    if by_box and instances.has("gt_boxes"):
        keep &= instances.gt_boxes.nonempty(threshold=box_threshold)
    if by_mask and instances.has("gt_masks"):
        masks = instances.gt_masks
        keep &= masks.nonempty() if isinstance(masks, BitMasks) else masks.flatten(1).any(1)
    return instances[keep]
