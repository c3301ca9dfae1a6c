#!/usr/bin/env python
"""PQ / SQ / RQ and mIoU of semantic segmentation predictions (every class = one segment).

Reads the ``sem_seg_predictions.json`` that ``SemSegEvaluator`` writes into the evaluation
output folder (records ``{file_name, category_id, segmentation}`` with COCO RLE masks) and
compares them with the ground-truth PNGs (``sem_seg_file_name``) of a registered dataset.

Example::

    python tools/evaluate_pq_for_semantic_segmentation.py --dataset-name ade20k_sem_seg_val \\
        --json-file output/inference/sem_seg_predictions.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from mask2former.data import DatasetCatalog, MetadataCatalog, register_builtin
from mask2former.evaluation.semantic_pq import evaluate_sem_seg_json
from mask2former.utils.file_failures import FilesFailedError

logger = logging.getLogger("mask2former.evaluate_pq_for_semantic_segmentation")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--dataset-name",
        default="ade20k_sem_seg_val",
        help="registered semantic dataset, e.g. ade20k_sem_seg_val, "
        "coco_2017_test_stuff_10k_sem_seg, ade20k_full_sem_seg_val",
    )
    parser.add_argument("--json-file", required=True, help="sem_seg_predictions.json")
    parser.add_argument(
        "--datasets-root",
        help="root of the datasets (default: $DETECTRON2_DATASETS or ./datasets)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    register_builtin(args.datasets_root)
    if not os.path.isfile(args.json_file):
        raise SystemExit(f"--json-file {args.json_file!r} does not exist")
    with open(args.json_file) as f:
        predictions = json.load(f)
    meta = MetadataCatalog.get(args.dataset_name)
    records = DatasetCatalog.get(args.dataset_name)
    gt_files = {
        os.path.splitext(os.path.basename(r["file_name"]))[0]: r["sem_seg_file_name"]
        for r in records
        if "sem_seg_file_name" in r
    }
    if not gt_files:
        raise SystemExit(f"dataset {args.dataset_name!r} has no record with sem_seg_file_name")
    try:
        results = evaluate_sem_seg_json(
            predictions,
            gt_files,
            list(meta.stuff_classes),
            meta.get("ignore_label", 255),
            meta.get("stuff_dataset_id_to_contiguous_id"),
        )
    except FilesFailedError as e:
        # The other images' metrics first, then the failure with its count as the last line.
        _print_results(args.dataset_name, e.results)
        raise SystemExit(f"Error: {e}") from e
    _print_results(args.dataset_name, results)


def _print_results(dataset_name: str, results: dict) -> None:
    print(f"{dataset_name}: {results['num_images']} images")
    print(f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}")
    print("-" * 38)
    print(
        f"{'All':10s}| {results['PQ']:5.1f}  {results['SQ']:5.1f}  {results['RQ']:5.1f} "
        f"{results['N']:5d}"
    )
    print(f"\nmIoU: {results['mIoU']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
