"""COCO semantic labels from panoptic ones (all 133 classes, contiguous ids, 255 unlabeled).

Writes ``$DETECTRON2_DATASETS/coco/panoptic_semseg_{train,val}2017/`` used by the
``coco_2017_*_panoptic_with_sem_seg`` datasets.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from _parallel import exit_on_failures, run_parallel
from PIL import Image

from mask2former.data.datasets import load_class_table
from mask2former.utils.file_failures import FileFailures


def convert(src: str, dst: str, segments: list[dict], id_map: dict[int, int]) -> None:
    rgb = np.asarray(Image.open(src), dtype=np.uint32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    out = np.full(ids.shape, 255, dtype=np.uint8)
    for seg in segments:
        if seg["category_id"] not in id_map:
            raise ValueError(
                f"{src}: segment {seg['id']} has category_id {seg['category_id']}, which is not "
                "one of the 133 COCO panoptic categories"
            )
        out[ids == seg["id"]] = id_map[seg["category_id"]]
    Image.fromarray(out).save(dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    coco = os.path.join(args.root, "coco")
    id_map = {c["id"]: i for i, c in enumerate(load_class_table("coco_panoptic_133"))}
    failures, total = FileFailures("panoptic PNGs"), 0
    for split in ("val2017", "train2017"):
        json_file = os.path.join(coco, "annotations", f"panoptic_{split}.json")
        if not os.path.isfile(json_file):
            raise FileNotFoundError(f"{json_file} not found; set --root or DETECTRON2_DATASETS")
        with open(json_file) as f:
            annotations = json.load(f)["annotations"]
        src_dir = os.path.join(coco, f"panoptic_{split}")
        dst_dir = os.path.join(coco, f"panoptic_semseg_{split}")
        os.makedirs(dst_dir, exist_ok=True)
        items = [
            (
                os.path.join(src_dir, a["file_name"]),
                os.path.join(dst_dir, a["file_name"]),
                a["segments_info"],
                id_map,
            )
            for a in annotations
        ]
        run_parallel(convert, items, f"COCO {split}", failures, args.workers)
        total += len(items)
    exit_on_failures(failures, total)


if __name__ == "__main__":
    main()
