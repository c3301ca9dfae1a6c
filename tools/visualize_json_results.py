#!/usr/bin/env python
"""Draw saved predictions beside the ground truth of a registered dataset.

The predictions are a COCO instances results JSON (``inference/coco_instances_results.json``
of evaluation) or a ``demo/demo.py --save-raw`` output folder (``sem_seg/``, ``panoptic/`` +
``panoptic.json``, ``instances.json``; images matched by file stem).

Examples:
  python tools/visualize_json_results.py --input output/inference/coco_instances_results.json \\
      --output vis/ --dataset my_val --config-file my.yaml
  python tools/visualize_json_results.py --input raw/ --output vis/ --dataset my_val_sem
"""

import argparse
import logging
import os
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402

from mask2former.data import DatasetCatalog, MetadataCatalog, read_image  # noqa: E402
from mask2former.data.datasets.custom_config import config_with_datasets  # noqa: E402
from mask2former.data.datasets.custom_drawing import (  # noqa: E402
    SavedPredictions,
    draw_record,
    side_by_side,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="results JSON or --save-raw folder")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--dataset", required=True, help="registered dataset of the images")
    parser.add_argument(
        "--config-file", default="", metavar="FILE", help="config whose DATASETS.CUSTOM to register"
    )
    parser.add_argument("--conf-threshold", type=float, default=0.5, help="instance score cut")
    parser.add_argument("--num", type=int, default=0, help="at most this many images (0: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config_with_datasets(args.config_file)
    metadata = MetadataCatalog.get(args.dataset)
    predictions = SavedPredictions(args.input, metadata)
    records = DatasetCatalog.get(args.dataset)
    os.makedirs(args.output, exist_ok=True)
    for record in records[: args.num or None]:
        image = read_image(record["file_name"], "RGB")
        drawn = side_by_side(
            predictions.draw(image, record, args.conf_threshold),
            draw_record(image, record, metadata),
        )
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        cv2.imwrite(
            os.path.join(args.output, f"{stem}.png"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)
        )
    print(
        f"Wrote {min(len(records), args.num or len(records))} images (prediction | ground "
        f"truth) to {args.output}"
    )


if __name__ == "__main__":
    main()
