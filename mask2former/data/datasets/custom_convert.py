"""Convert per-image label maps into COCO panoptic (+ instances JSON + semantic PNGs), so that
one labelled set trains and evaluates panoptic, instance and semantic segmentation.

Input, per image ``<stem>``:

- a semantic label map ``<semantic_dir>/<stem>.png``: class ``i`` of ``classes`` is value
  ``i``; ``ignore_label`` (255) is void;
- the instances of the thing classes, either as instance-id maps
  ``<instance_dir>/<stem>.png`` (0 = no instance; every other value one object; a thing pixel
  outside any object becomes void) or as a COCO instances JSON whose category names are
  thing classes (later annotations are painted over earlier ones).

Output in ``output_dir``: ``panoptic/<stem>.png`` + ``panoptic.json`` (COCO panoptic),
``instances.json`` (COCO instances, RLE masks) and ``sem_seg/<stem>.png``. Category ``i`` of
``classes`` gets id ``i + 1``; the semantic PNGs hold Mask2Former's contiguous ids (things
first, see :func:`~mask2former.data.datasets.custom.panoptic_metadata_from_categories`),
which are also ``stuff_classes`` of the registered dataset.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mask2former.data.datasets.custom import panoptic_metadata_from_categories
from mask2former.data.datasets.custom_checks import list_by_stem
from mask2former.data.datasets.paths import read_json
from mask2former.structures.masks import coco_segmentation_rle
from mask2former.utils.panoptic_ids import id2rgb

logger = logging.getLogger(__name__)

__all__ = ["PanopticConversion", "convert_to_coco_panoptic"]


@dataclass
class PanopticConversion:
    """What :func:`convert_to_coco_panoptic` wrote."""

    panoptic_json: str
    panoptic_root: str
    instances_json: str
    sem_seg_root: str
    categories: list[dict]
    num_images: int
    num_segments: int


def _read_label_map(path: str) -> np.ndarray:
    with Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16", "1"):
            raise ValueError(f"{path} has mode {image.mode}; expected a single-channel label map")
        return np.asarray(image).astype(np.int64)


def _instances_from_coco(json_file: str, classes: list[str], thing_ids: set[int]) -> dict:
    """``{image file stem: [(category id, (H, W) bool mask), ...]}`` from a COCO JSON."""
    content = read_json(json_file, None)
    by_name = {name: i + 1 for i, name in enumerate(classes)}
    category_map = {}
    for cat in content["categories"]:
        if by_name.get(cat["name"]) not in thing_ids:
            raise ValueError(
                f"{json_file}: category {cat['name']!r} (id {cat['id']}) is not one of the "
                f"thing classes {[classes[i - 1] for i in sorted(thing_ids)]}"
            )
        category_map[cat["id"]] = by_name[cat["name"]]
    images = {img["id"]: img for img in content["images"]}
    per_stem: dict[str, list] = {
        os.path.splitext(os.path.basename(img["file_name"]))[0]: [] for img in images.values()
    }
    for ann in content["annotations"]:
        img = images[ann["image_id"]]
        segm = ann["segmentation"]
        height, width = img["height"], img["width"]
        rle = coco_segmentation_rle(segm, height, width)
        stem = os.path.splitext(os.path.basename(img["file_name"]))[0]
        per_stem[stem].append((category_map[ann["category_id"]], mask_util.decode(rle) > 0))
    return per_stem


def _instances_from_png(path: str, semantic: np.ndarray, thing_ids: set[int]) -> list:
    instance_map = _read_label_map(path)
    if instance_map.shape != semantic.shape:
        raise ValueError(f"{path} is {instance_map.shape} but its semantic map is {semantic.shape}")
    objects = []
    for instance in np.unique(instance_map[instance_map > 0]):
        mask = instance_map == instance
        for label in np.unique(semantic[mask]):
            if int(label) + 1 in thing_ids:
                objects.append((int(label) + 1, mask & (semantic == label)))
    return objects


def _panoptic_segments(
    semantic: np.ndarray, objects: list, thing_ids: set[int], ignore_label: int
) -> tuple[np.ndarray, list[dict]]:
    """(H, W) segment ids and their ``segments_info`` for one image.

    Stuff pixels form one segment per class; objects are painted over them in order; a thing
    pixel outside every object, and ``ignore_label``, are void (0).
    """
    segments = [
        (int(label) + 1, semantic == label)
        for label in np.unique(semantic)
        if label != ignore_label and int(label) + 1 not in thing_ids
    ]
    segments += objects
    segment_map = np.zeros(semantic.shape, dtype=np.int64)
    for segment_id, (_, mask) in enumerate(segments, start=1):
        segment_map[mask] = segment_id
    covered = np.zeros(semantic.shape, dtype=bool)
    for _, mask in objects:
        covered |= mask
    segment_map[np.isin(semantic + 1, list(thing_ids)) & ~covered] = 0
    segments_info = []
    for segment_id, (category_id, _) in enumerate(segments, start=1):
        ys, xs = np.nonzero(segment_map == segment_id)
        if len(ys) == 0:
            continue  # painted over entirely
        x0, y0 = int(xs.min()), int(ys.min())
        segments_info.append(
            {
                "id": segment_id,
                "category_id": category_id,
                "area": len(ys),
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                "iscrowd": 0,
            }
        )
    return segment_map, segments_info


def convert_to_coco_panoptic(
    semantic_dir: str,
    image_dir: str,
    output_dir: str,
    *,
    classes: list[str],
    thing_classes: list[str],
    instance_dir: str | None = None,
    instances_json: str | None = None,
    ignore_label: int = 255,
    image_ext: str = "jpg",
) -> PanopticConversion:
    """Write COCO panoptic, COCO instances and semantic files for a labelled image set.

    Args:
        semantic_dir: folder of semantic label maps (``<stem>.png``).
        image_dir: folder of the images (``<stem>.<image_ext>``).
        output_dir: where to write (see the module docstring).
        classes: all class names, in the label maps' value order.
        thing_classes: the names in ``classes`` that are countable objects.
        instance_dir: folder of instance-id maps (``<stem>.png``); or give ``instances_json``.
        instances_json: COCO instances JSON of the things; or give ``instance_dir``.
        ignore_label: void value of the semantic maps.
        image_ext: image extension.

    Raises:
        ValueError: an unknown thing class, both or neither instance source, or a label map
            with values outside ``classes`` / ``ignore_label``.
        FileNotFoundError: a label map without its image or instance map.
    """
    if (instance_dir is None) == (instances_json is None):
        raise ValueError(
            "convert_to_coco_panoptic: give exactly one of instance_dir and instances_json"
        )
    unknown = sorted(set(thing_classes) - set(classes))
    if unknown:
        raise ValueError(f"thing_classes {unknown} are not in classes {classes}")
    categories = [
        {"id": i + 1, "name": name, "isthing": int(name in thing_classes)}
        for i, name in enumerate(classes)
    ]
    meta = panoptic_metadata_from_categories(categories)
    for cat in categories:
        cat["color"] = meta["stuff_colors"][meta["stuff_dataset_id_to_contiguous_id"][cat["id"]]]
    # Semantic value v (class v + 1) -> Mask2Former's contiguous id; void stays ignore_label.
    to_contiguous = np.full(max(len(classes), ignore_label + 1), ignore_label, dtype=np.int64)
    for category_id, contiguous in meta["stuff_dataset_id_to_contiguous_id"].items():
        to_contiguous[category_id - 1] = contiguous
    label_dtype = np.uint8 if len(to_contiguous) <= 256 else np.uint16
    thing_ids = {c["id"] for c in categories if c["isthing"]}
    semantic_files = list_by_stem(semantic_dir, "png", semantic_dir)
    images = list_by_stem(image_dir, image_ext, image_dir)
    coco_objects = (
        _instances_from_coco(instances_json, classes, thing_ids) if instances_json else None
    )
    out = {k: os.path.join(output_dir, k) for k in ("panoptic", "sem_seg")}
    for folder in out.values():
        os.makedirs(folder, exist_ok=True)
    images_out, panoptic_anns, instance_anns = [], [], []
    for image_id, stem in enumerate(sorted(semantic_files), start=1):
        if stem not in images:
            raise FileNotFoundError(
                f"{semantic_files[stem]} has no image {stem}.{image_ext} in {image_dir}"
            )
        semantic = _read_label_map(semantic_files[stem])
        bad = sorted(set(np.unique(semantic).tolist()) - set(range(len(classes))) - {ignore_label})
        if bad:
            raise ValueError(
                f"{semantic_files[stem]} has values {bad[:10]} outside the {len(classes)} "
                f"classes and ignore_label {ignore_label}"
            )
        if coco_objects is not None:
            objects = coco_objects.get(stem, [])
        else:
            png = os.path.join(instance_dir, stem + ".png")
            if not os.path.isfile(png):
                raise FileNotFoundError(f"{semantic_files[stem]} has no instance map {png}")
            objects = _instances_from_png(png, semantic, thing_ids)
        segment_map, segments_info = _panoptic_segments(semantic, objects, thing_ids, ignore_label)
        png_name = stem + ".png"
        Image.fromarray(id2rgb(segment_map)).save(os.path.join(out["panoptic"], png_name))
        contiguous = to_contiguous[semantic].astype(label_dtype)
        contiguous[segment_map == 0] = ignore_label
        Image.fromarray(contiguous).save(os.path.join(out["sem_seg"], png_name))
        height, width = semantic.shape
        images_out.append(
            {
                "id": image_id,
                "file_name": os.path.basename(images[stem]),
                "height": height,
                "width": width,
            }
        )
        panoptic_anns.append(
            {"image_id": image_id, "file_name": png_name, "segments_info": segments_info}
        )
        for info in segments_info:
            if info["category_id"] in thing_ids:
                rle = mask_util.encode(np.asfortranarray(segment_map == info["id"]))
                rle["counts"] = rle["counts"].decode("ascii")
                instance_anns.append(
                    {
                        **info,
                        "id": len(instance_anns) + 1,
                        "image_id": image_id,
                        "segmentation": rle,
                    }
                )
    panoptic_json = os.path.join(output_dir, "panoptic.json")
    _write_json(panoptic_json, images_out, panoptic_anns, categories)
    instances_out = os.path.join(output_dir, "instances.json")
    things = [c for c in categories if c["isthing"]]
    _write_json(instances_out, images_out, instance_anns, things)
    num_segments = sum(len(a["segments_info"]) for a in panoptic_anns)
    logger.info("Wrote %d images, %d segments to %s", len(images_out), num_segments, output_dir)
    return PanopticConversion(
        panoptic_json=panoptic_json,
        panoptic_root=out["panoptic"],
        instances_json=instances_out,
        sem_seg_root=out["sem_seg"],
        categories=categories,
        num_images=len(images_out),
        num_segments=num_segments,
    )


def _write_json(path: str, images: list, annotations: list, categories: list) -> None:
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
