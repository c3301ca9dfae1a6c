#!/usr/bin/env python
"""Statistics of registered datasets: images, instances (or segments) per class, mask areas,
images without annotations, and warnings (classes with no samples, empty images).

Examples:
  python tools/dataset_stats.py --config-file my.yaml              # DATASETS.TRAIN and TEST
  python tools/dataset_stats.py --dataset ade20k_sem_seg_val --json stats.json
"""

import argparse
import dataclasses
import json
import logging
import os
import sys

# Run from a source checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mask2former.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from mask2former.data.datasets.custom_config import config_with_datasets  # noqa: E402
from mask2former.data.datasets.custom_stats import dataset_stats, format_stats  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--dataset",
        nargs="+",
        default=[],
        help="registered dataset names (default: DATASETS.TRAIN and DATASETS.TEST)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the statistics as JSON")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ..."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_with_datasets(args.config_file, args.opts)
    names = args.dataset or list(dict.fromkeys([*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]))
    if not names:
        raise SystemExit("No dataset: give --dataset NAME or DATASETS.TRAIN/TEST in the config")
    all_stats = []
    for name in names:
        stats = dataset_stats(name, DatasetCatalog.get(name), MetadataCatalog.get(name))
        print(format_stats(stats), end="\n\n")
        all_stats.append(dataclasses.asdict(stats))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_stats, f, indent=1)


if __name__ == "__main__":
    main()
