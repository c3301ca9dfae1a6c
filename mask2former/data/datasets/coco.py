"""Readers for COCO-format instance JSON and for folders of semantic label PNGs."""

from __future__ import annotations

import contextlib
import io
import logging
import os

import pycocotools.mask as mask_util

from mask2former.data.catalog import MetadataCatalog
from mask2former.data.datasets.coco_checks import check_annotation, check_coco_dataset
from mask2former.data.datasets.paths import read_json, require_path
from mask2former.data.detection_utils import BoxMode

logger = logging.getLogger(__name__)

__all__ = ["load_coco_json", "load_sem_seg"]


def load_coco_json(json_file: str, image_root: str, dataset_name: str | None = None) -> list[dict]:
    """Read a COCO instances JSON into records.

    Each record has ``file_name``, ``height``, ``width``, ``image_id`` and ``annotations``
    (``bbox`` XYWH with ``bbox_mode``, contiguous ``category_id``, ``iscrowd``, and
    ``segmentation`` as polygons or RLE). Invalid polygons (odd length or < 3 points) are
    dropped; an instance without a valid one is skipped.

    Args:
        json_file: COCO instances JSON.
        image_root: folder the ``file_name`` entries are relative to.
        dataset_name: when given, its metadata receives ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` (sorted category ids -> 0..K-1).
    """
    from pycocotools.coco import COCO

    coco_api = COCO()
    coco_api.dataset = read_json(json_file, dataset_name)
    check_coco_dataset(coco_api.dataset, json_file)
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco_api.createIndex()
    cat_ids = sorted(coco_api.getCatIds())
    id_map = {cat_id: i for i, cat_id in enumerate(cat_ids)}
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        cats = coco_api.loadCats(cat_ids)
        meta.set(thing_classes=[c["name"] for c in cats], thing_dataset_id_to_contiguous_id=id_map)
    img_ids = sorted(coco_api.imgs.keys())
    records = []
    num_skipped = 0
    for img in coco_api.loadImgs(img_ids):
        record = {
            "file_name": os.path.join(image_root, img["file_name"]),
            "height": img["height"],
            "width": img["width"],
            "image_id": img["id"],
        }
        objs = []
        for anno in coco_api.imgToAnns[img["id"]]:
            if anno.get("ignore", 0) != 0:
                raise ValueError(f"{json_file}: 'ignore' annotations are not supported")
            check_annotation(anno, img, json_file)
            obj = {k: anno[k] for k in ("iscrowd", "bbox", "category_id") if k in anno}
            if "bbox" in obj and len(obj["bbox"]) == 0:
                raise ValueError(
                    f"{json_file}: an annotation of image {img['id']} has an empty bbox"
                )
            segm = anno.get("segmentation")
            if segm:
                if isinstance(segm, dict):
                    if isinstance(segm["counts"], list):  # uncompressed RLE
                        segm = mask_util.frPyObjects(segm, *segm["size"])
                else:
                    segm = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
                    if not segm:
                        num_skipped += 1
                        continue
                obj["segmentation"] = segm
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            if obj.get("category_id") not in id_map:
                raise ValueError(
                    f"{json_file}: annotation {anno.get('id')} of image {img['id']} has "
                    f"category_id={obj.get('category_id')}, which is not in 'categories' "
                    f"(ids {cat_ids})."
                )
            obj["category_id"] = id_map[obj["category_id"]]
            objs.append(obj)
        record["annotations"] = objs
        records.append(record)
    if num_skipped:
        logger.warning("Skipped %d instances without a valid polygon in %s", num_skipped, json_file)
    logger.info("Loaded %d images in COCO format from %s", len(records), json_file)
    return records


def load_sem_seg(
    gt_root: str,
    image_root: str,
    gt_ext: str = "png",
    image_ext: str = "jpg",
    dataset_name: str | None = None,
) -> list[dict]:
    """Pair images and label maps by file stem.

    Returns:
        Records with ``file_name`` and ``sem_seg_file_name``, sorted by stem. When the two
        folders differ, their intersection is used (with a warning).
    """
    require_path(gt_root, dataset_name)
    require_path(image_root, dataset_name)

    def by_stem(folder: str, ext: str) -> dict[str, str]:
        return {
            os.path.splitext(f)[0]: os.path.join(folder, f)
            for f in os.listdir(folder)
            if f.endswith(ext)
        }

    images, gts = by_stem(image_root, image_ext), by_stem(gt_root, gt_ext)
    if not gts:
        raise FileNotFoundError(f"Dataset {dataset_name!r}: no *.{gt_ext} files in {gt_root}")
    if images.keys() != gts.keys():
        logger.warning(
            "%s has %d images but %s has %d annotations; using their intersection",
            image_root,
            len(images),
            gt_root,
            len(gts),
        )
    stems = sorted(images.keys() & gts.keys())
    logger.info("Loaded %d images with semantic segmentation from %s", len(stems), image_root)
    return [{"file_name": images[s], "sem_seg_file_name": gts[s]} for s in stems]
