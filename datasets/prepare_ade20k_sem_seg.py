"""ADE20K-150 semantic labels for detectron2: shift ids by -1 so "other" (0) becomes 255.

Reads ``$DETECTRON2_DATASETS/ADEChallengeData2016/annotations/{training,validation}/*.png`` and
writes ``annotations_detectron2/{training,validation}/``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from _parallel import exit_on_failures, run_parallel
from PIL import Image

from mask2former.utils.file_failures import FileFailures


def convert(src: str, dst: str) -> None:
    labels = np.asarray(Image.open(src))
    if labels.dtype != np.uint8:
        raise ValueError(f"{src}: expected 8-bit labels, got {labels.dtype}")
    Image.fromarray(labels - np.uint8(1)).save(dst)  # 0 wraps to 255 (ignore)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.getenv("DETECTRON2_DATASETS", "datasets"))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    ade = Path(args.root) / "ADEChallengeData2016"
    failures, total = FileFailures("label files"), 0
    for split in ("training", "validation"):
        src_dir, dst_dir = ade / "annotations" / split, ade / "annotations_detectron2" / split
        if not src_dir.is_dir():
            raise FileNotFoundError(f"{src_dir} not found; set --root or DETECTRON2_DATASETS")
        dst_dir.mkdir(parents=True, exist_ok=True)
        items = [(str(f), str(dst_dir / f.name)) for f in sorted(src_dir.glob("*.png"))]
        run_parallel(convert, items, f"ADE20K {split}", failures, args.workers)
        total += len(items)
    exit_on_failures(failures, total)


if __name__ == "__main__":
    main()
