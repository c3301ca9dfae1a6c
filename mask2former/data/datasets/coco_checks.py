"""Shape checks of a COCO instances JSON, so that a malformed entry is named (file, image,
annotation, field) instead of failing deep inside pycocotools or numpy."""

from __future__ import annotations

from numbers import Real
from typing import Any


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, list | dict) else (
        f"a {type(value).__name__} of {len(value)}"
    )  # fmt: skip


def _where(json_file: str, anno: dict[str, Any]) -> str:
    return f"{json_file}: annotation {anno.get('id')} of image {anno.get('image_id')}"


def check_coco_dataset(data: Any, json_file: str) -> None:
    """Check the top level, every image entry and every annotation's ``image_id``.

    Raises:
        ValueError: naming ``json_file``, the entry and what was expected.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{json_file} holds {_kind(data)}; expected a COCO JSON object")
    for key in ("images", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise ValueError(f"{json_file}: '{key}' is {_kind(data[key])}; expected a list")
    for image in data.get("images", []):
        for key in ("id", "file_name", "height", "width"):
            if not isinstance(image, dict) or key not in image:
                raise ValueError(f"{json_file}: an image entry lacks '{key}': {image!r:.200}")
        for key in ("height", "width"):
            if not isinstance(image[key], int) or image[key] <= 0:
                raise ValueError(
                    f"{json_file}: image {image['id']} has {key} {image[key]!r}; expected a "
                    "positive integer"
                )
    for anno in data.get("annotations", []):
        if not isinstance(anno, dict) or "image_id" not in anno:
            raise ValueError(f"{json_file}: an annotation lacks 'image_id': {anno!r:.200}")


def check_annotation(anno: dict[str, Any], image: dict[str, Any], json_file: str) -> None:
    """Check an annotation's ``bbox`` and ``segmentation`` against the COCO format.

    Raises:
        ValueError: naming ``json_file``, the annotation, the image and the field.
    """
    bbox = anno.get("bbox")
    if bbox is not None and bbox != [] and not _numbers(bbox, 4):
        raise ValueError(f"{_where(json_file, anno)}: bbox is {_kind(bbox)}; expected [x, y, w, h]")
    segm = anno.get("segmentation")
    if not segm:
        return
    if isinstance(segm, dict):
        size = [image["height"], image["width"]]
        if "counts" not in segm or segm.get("size") != size:
            raise ValueError(
                f"{_where(json_file, anno)}: RLE segmentation with size {segm.get('size')!r} and "
                f"{'counts' if 'counts' in segm else 'no counts'}; expected 'counts' and size "
                f"{size} (the image's [height, width])"
            )
    # The first coordinate of each polygon only: COCO train has ~10^7 of them.
    elif not isinstance(segm, list) or not all(_polygon_like(p) for p in segm):
        raise ValueError(
            f"{_where(json_file, anno)}: segmentation is {_kind(segm)}; expected polygons "
            "[[x1, y1, x2, y2, ...], ...] or an RLE {'size': [h, w], 'counts': ...}"
        )


def _polygon_like(polygon: Any) -> bool:
    return isinstance(polygon, list) and (not polygon or _number(polygon[0]))


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _numbers(values: list, length: int | None = None) -> bool:
    return (
        isinstance(values, list)
        and (length is None or len(values) == length)
        and all(_number(v) for v in values)
    )
