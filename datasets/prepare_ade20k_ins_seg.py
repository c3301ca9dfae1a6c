"""ADE20K instance annotations (100 classes) in COCO instance format, masks as RLE.

Reads ``$DETECTRON2_DATASETS/ADEChallengeData2016/images/{training,validation}/*.jpg`` and
``annotations_instance/{training,validation}/<stem>.png`` (R = instance category 1..100,
G = instance id, 0 = none) and writes ``ade20k_instance_{train,val}.json`` next to them.
Category ids are the ADE20K-150 ids shared with the panoptic annotations (see
``class_tables/ade20k_instance_catid_mapping.json``); image ids are the file stems and
annotation ids count from 1 in file-name order, as in the original.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from _parallel import exit_on_failures, run_parallel
from PIL import Image
from prepare_ade20k_pan_seg import (
    ADE_DIR,
    SPLITS,
    instance_category_map,
    instance_masks,
    mask_bbox,
    split_files,
)

from mask2former.data.datasets import load_class_table
from mask2former.utils.file_failures import FileFailures


def convert(image_file: str, instance_file: str, cat_map: dict[int, int]) -> tuple[dict, list]:
    """The ``images`` entry of one image and its annotations (without ``id``), by instance id."""
    stem = Path(image_file).stem
    with Image.open(image_file) as img:
        width, height = img.size
    annotations = []
    for category_id, mask in instance_masks(instance_file, (height, width), cat_map):
        rle = mask_util.encode(np.asfortranarray(mask, dtype=np.uint8))
        rle["counts"] = rle["counts"].decode("ascii")
        annotations.append(
            {
                "image_id": stem,
                "iscrowd": 0,
                "category_id": category_id,
                "bbox": mask_bbox(mask),
                "segmentation": rle,
                "area": int(mask_util.area(rle)),
            }
        )
    image = {"id": stem, "file_name": stem + ".jpg", "width": width, "height": height}
    return image, annotations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=os.getenv("DETECTRON2_DATASETS", "datasets"),
        help="folder holding ADEChallengeData2016/ (default: $DETECTRON2_DATASETS or ./datasets)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    categories = load_class_table("ade20k_instance_100")
    cat_map = instance_category_map()
    failures, total = FileFailures("images"), 0
    for name, dirname in SPLITS:
        rows = split_files(args.root, dirname, ("annotations_instance",))
        items = [(*row, cat_map) for row in rows]
        results = run_parallel(convert, items, f"ADE20K instance {name}", failures, args.workers)
        total += len(items)
        annotations = [{"id": 0, **a} for _, per_image in results for a in per_image]
        for ann_id, annotation in enumerate(annotations, start=1):
            annotation["id"] = ann_id
        out = {
            "images": [image for image, _ in results],
            "annotations": annotations,
            "categories": categories,
        }
        with open(os.path.join(args.root, ADE_DIR, f"ade20k_instance_{name}.json"), "w") as f:
            json.dump(out, f)
    exit_on_failures(failures, total)


if __name__ == "__main__":
    main()
