"""Command-line parser and per-process set-up shared by the training/evaluation scripts."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from typing import Any

import numpy as np
import torch

from mask2former.engine.launch import DEFAULT_TIMEOUT
from mask2former.utils import comm

logger = logging.getLogger(__name__)

_LOG_FORMAT = "[%(asctime)s %(name)s]: %(message)s"
_LOG_DATEFMT = "%m/%d %H:%M:%S"


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """detectron2's training CLI: ``--config-file``, ``--resume``, ``--eval-only``,
    ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url``, ``--dist-timeout``
    and trailing ``KEY VALUE`` config overrides (``opts``)."""
    prog = os.path.basename(sys.argv[0])
    parser = argparse.ArgumentParser(
        epilog=epilog
        or f"""Examples:
  single machine:   {prog} --num-gpus 8 --config-file cfg.yaml
  override keys:    {prog} --config-file cfg.yaml MODEL.WEIGHTS w.pth SOLVER.BASE_LR 0.001
  multiple nodes:   (node 0) {prog} --machine-rank 0 --num-machines 2 --dist-url tcp://HOST:PORT
                    (node 1) {prog} --machine-rank 1 --num-machines 2 --dist-url tcp://HOST:PORT
  torchrun:         torchrun --nproc-per-node 8 {prog} --config-file cfg.yaml
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="resume from OUTPUT_DIR/last_checkpoint (model, optimizer, scheduler, iteration) "
        "instead of loading MODEL.WEIGHTS",
    )
    parser.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    parser.add_argument(
        "--num-gpus", type=int, default=1, help="processes per machine (GPUs, or CPU processes)"
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument(
        "--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)"
    )
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="torch.distributed init URL, e.g. tcp://HOST:PORT; 'auto' picks a free local port",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=DEFAULT_TIMEOUT.total_seconds(),
        metavar="SECONDS",
        help="how long the rendezvous and every collective wait for the other ranks before the "
        "job stops with an error (a rank died or hangs); default: %(default)g (30 minutes)",
    )
    parser.add_argument(
        "opts",
        help="config overrides at the end of the command: space-separated KEY VALUE pairs",
        default=None,
        nargs=argparse.REMAINDER,
    )
    return parser


def setup_logger(
    output_dir: str | None = None, distributed_rank: int = 0, name: str = "mask2former"
) -> logging.Logger:
    """Log ``name`` at INFO to stdout (rank 0 only) and to ``output_dir/log.txt``
    (``log.txt.rank{N}`` on other ranks). Idempotent per (name, output file)."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    formatter = logging.Formatter(_LOG_FORMAT, datefmt=_LOG_DATEFMT)
    existing = {getattr(h, "_m2f_key", None) for h in log.handlers}
    if distributed_rank == 0 and "console" not in existing:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setFormatter(formatter)
        console._m2f_key = "console"  # type: ignore[attr-defined]
        log.addHandler(console)
    if output_dir:
        filename = os.path.join(output_dir, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        if filename not in existing:
            os.makedirs(os.path.dirname(filename), exist_ok=True)
            file_handler = logging.FileHandler(filename)
            file_handler.setFormatter(formatter)
            file_handler._m2f_key = filename  # type: ignore[attr-defined]
            log.addHandler(file_handler)
    return log


def seed_all_rng(seed: int | None = None) -> int:
    """Seed Python, NumPy and torch; a fresh random seed when ``seed`` is None.

    Returns:
        The seed used.
    """
    if seed is None:
        seed = (os.getpid() + int.from_bytes(os.urandom(2), "big")) % 2**31
        logger.info(f"Using a generated random seed {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def default_setup(cfg: Any, args: argparse.Namespace) -> None:
    """Per-process set-up: output directory, logging (console + ``log.txt``), the merged
    config saved as ``OUTPUT_DIR/config.yaml`` (rank 0), seeding (``SEED + rank``, or
    random when ``SEED < 0``) and ``CUDNN_BENCHMARK``."""
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    for name in ("mask2former", "fvcore"):
        setup_logger(output_dir, distributed_rank=rank, name=name)
    logger.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    logger.info(f"Command line arguments: {args}")
    logger.info(f"Running with full config:\n{cfg.dump()}")
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        with open(path, "w") as f:
            f.write(cfg.dump())
        logger.info(f"Full config saved to {path}")
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)
    if not getattr(args, "eval_only", False):
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK
