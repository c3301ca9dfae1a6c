#!/usr/bin/env python
"""Count a config's model parameters, FLOPs and activations (torch dispatch, no tracing).

Examples::

    python tools/analyze_model.py --tasks parameter \\
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml
    python tools/analyze_model.py --tasks flop activation -n 10 \\
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml \\
        MODEL.WEIGHTS model_final.pkl

FLOPs and activations depend on the input: they are computed on the first ``--num-inputs``
images of ``DATASETS.TEST[0]`` when that dataset is registered and its files exist, otherwise
(or with ``--generated-inputs``) on random images of ``--input-size``. One fused multiply-add
counts as one FLOP.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.config import get_cfg
from mask2former.data import DatasetCatalog, build_detection_test_loader, register_builtin
from mask2former.modeling import build_model
from mask2former.modeling.analysis import build_model_on_meta, count_activations, parameter_counts
from mask2former.modeling.flop_count import count_flops, flop_table

logger = logging.getLogger("mask2former.analyze_model")

TASKS = ("parameter", "flop", "activation", "structure")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Parameter / FLOP / activation counts of a Mask2Former config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="YAML config")
    parser.add_argument(
        "--tasks",
        nargs="+",
        required=True,
        metavar="TASK",
        help=f"what to count, any of {', '.join(TASKS)}; config overrides may follow",
    )
    parser.add_argument(
        "-n", "--num-inputs", type=int, default=10, help="inputs to average FLOPs/activations"
    )
    parser.add_argument(
        "--generated-inputs",
        action="store_true",
        help="use random images instead of the DATASETS.TEST[0] images",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="size of generated images (default: INPUT.MIN_SIZE_TEST square)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; overrides written right after ``--tasks`` go to ``opts``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    tasks = list(itertools.takewhile(lambda name: name in TASKS, args.tasks))
    if not tasks:
        parser.error(f"--tasks: choose from {', '.join(TASKS)}, got {args.tasks[0]!r}")
    args.opts = args.tasks[len(tasks) :] + args.opts
    args.tasks = tasks
    return args


def setup_cfg(args: argparse.Namespace):
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.merge_from_list(args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE is %s but CUDA is not available; using cpu", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def _generated_inputs(cfg, args: argparse.Namespace) -> Iterator[list[dict]]:
    height, width = args.input_size or (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST)
    generator = torch.Generator().manual_seed(0)
    while True:
        image = torch.randint(0, 256, (3, height, width), generator=generator).float()
        yield [{"image": image, "height": height, "width": width}]


def _inputs(cfg, args: argparse.Namespace) -> Iterator[list[dict]]:
    """Batches of one input: dataset images when available, else generated ones."""
    if not args.generated_inputs and len(cfg.DATASETS.TEST):
        name = cfg.DATASETS.TEST[0]
        if name in DatasetCatalog.list():
            try:
                loader = build_detection_test_loader(cfg, name)
            except (FileNotFoundError, OSError) as e:
                logger.warning("Dataset %s is not available (%s); using generated inputs", name, e)
            else:
                logger.info("Counting on the first %d images of %s", args.num_inputs, name)
                return iter(loader)
    logger.info("Counting on %d generated input(s)", args.num_inputs)
    return _generated_inputs(cfg, args)


def _load_model(cfg) -> torch.nn.Module:
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def do_parameter(cfg, args: argparse.Namespace) -> None:
    counts = parameter_counts(build_model_on_meta(cfg))
    print(f"Total parameters: {counts.pop('') / 1e6:.2f} M")
    for name, num in counts.items():
        print(f"  {name}: {num / 1e6:.2f} M")


def do_structure(cfg, args: argparse.Namespace) -> None:
    print(build_model_on_meta(cfg))


def do_flop(cfg, args: argparse.Namespace) -> None:
    model = _load_model(cfg)
    by_operator: Counter[str] = Counter()
    totals = []
    counts = None
    for inputs in itertools.islice(_inputs(cfg, args), args.num_inputs):
        counts = count_flops(model, inputs)
        by_operator += counts.by_operator
        totals.append(counts.total)
    if counts is None:
        raise SystemExit("no input to count FLOPs on (--num-inputs must be >= 1)")
    print("FLOP table of the last input:\n" + flop_table(model, counts, max_depth=3))
    print("Average GFLOPs per operator:")
    for op, flops in sorted(by_operator.items(), key=lambda kv: -kv[1]):
        print(f"  {op}: {flops / len(totals) / 1e9:.4g}")
    print(f"Total GFLOPs: {np.mean(totals) / 1e9:.4g} +- {np.std(totals) / 1e9:.2g}")


def do_activation(cfg, args: argparse.Namespace) -> None:
    model = _load_model(cfg)
    by_operator: Counter[str] = Counter()
    totals = []
    for inputs in itertools.islice(_inputs(cfg, args), args.num_inputs):
        counts = count_activations(model, inputs)
        by_operator += counts
        totals.append(sum(counts.values()))
    if not totals:
        raise SystemExit("no input to count activations on (--num-inputs must be >= 1)")
    print("Average activations (M) per operator:")
    for op, num in sorted(by_operator.items(), key=lambda kv: -kv[1]):
        print(f"  {op}: {num / len(totals) / 1e6:.4g}")
    print(f"Total activations (M): {np.mean(totals) / 1e6:.4g} +- {np.std(totals) / 1e6:.2g}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    if args.num_inputs < 1:
        raise SystemExit(f"--num-inputs must be >= 1, got {args.num_inputs}")
    register_builtin()
    cfg = setup_cfg(args)
    tasks = {
        "parameter": do_parameter,
        "flop": do_flop,
        "activation": do_activation,
        "structure": do_structure,
    }
    with torch.no_grad():
        for task in args.tasks:
            tasks[task](cfg, args)


if __name__ == "__main__":
    sys.exit(main())
