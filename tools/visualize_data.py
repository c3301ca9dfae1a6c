#!/usr/bin/env python
"""Draw the ground truth of a dataset, raw or after the training mapper's augmentations
(detectron2's tool), to check annotations before training.

Examples:
  python tools/visualize_data.py --config-file my.yaml --source annotation --num 20 --output vis/
  python tools/visualize_data.py --config-file my.yaml --source dataloader --output vis/ \\
      INPUT.DATASET_MAPPER_NAME mask_former_semantic
"""

import argparse
import logging
import os
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mask2former.data import (  # noqa: E402
    DatasetCatalog,
    MetadataCatalog,
    build_detection_train_loader,
    read_image,
)
from mask2former.data.datasets.custom_config import config_with_datasets  # noqa: E402
from mask2former.data.datasets.custom_drawing import draw_mapped_sample, draw_record  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--source",
        choices=["annotation", "dataloader"],
        required=True,
        help="raw annotations, or the training loader's augmented samples",
    )
    parser.add_argument(
        "--dataset", help="registered dataset to draw (default: the first of DATASETS.TRAIN)"
    )
    parser.add_argument("--num", type=int, default=10, help="number of images to draw")
    parser.add_argument("--output", "--output-dir", dest="output", required=True, metavar="DIR")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ..."
    )
    return parser.parse_args(argv)


def _save(output: str, name: str, image_rgb: np.ndarray) -> str:
    path = os.path.join(output, name)
    cv2.imwrite(path, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    opts = list(args.opts)
    if args.dataset:
        opts += ["DATASETS.TRAIN", repr((args.dataset,))]
    cfg = config_with_datasets(args.config_file, opts + ["DATALOADER.NUM_WORKERS", "0"])
    if not cfg.DATASETS.TRAIN:
        raise SystemExit("No dataset: give --dataset NAME or DATASETS.TRAIN in the config")
    name = cfg.DATASETS.TRAIN[0]
    metadata = MetadataCatalog.get(name)
    os.makedirs(args.output, exist_ok=True)
    written = []
    if args.source == "annotation":
        for record in DatasetCatalog.get(name)[: args.num]:
            drawn = draw_record(read_image(record["file_name"], "RGB"), record, metadata)
            written.append(_save(args.output, os.path.basename(record["file_name"]), drawn))
    else:
        for batch in build_detection_train_loader(cfg):
            for sample in batch:
                drawn = draw_mapped_sample(sample, metadata, cfg.INPUT.FORMAT)
                stem = os.path.splitext(os.path.basename(sample["file_name"]))[0]
                written.append(_save(args.output, f"{len(written):04d}_{stem}.png", drawn))
            if len(written) >= args.num:
                break
    print(f"Wrote {len(written)} images of {name!r} to {args.output}")


if __name__ == "__main__":
    main()
