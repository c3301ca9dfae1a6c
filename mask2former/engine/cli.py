"""``mask2former-train`` / ``tools/train_net.py``: train or evaluate a model from a YAML config
with detectron2's command line (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.config import get_cfg
from mask2former.data import register_builtin
from mask2former.engine.defaults import default_argument_parser, default_setup
from mask2former.engine.launch import launch
from mask2former.engine.trainer import Trainer, build_model, evaluate
from mask2former.engine.visualize import save_visualizations
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA
from mask2former.utils import comm

logger = logging.getLogger(__name__)


def setup(args: argparse.Namespace) -> Any:
    """Config from defaults + ``--config-file`` + trailing overrides, frozen; then the
    per-process set-up (output dir, logs, ``config.yaml``, seeds) and the registration of the
    builtin datasets under ``$DETECTRON2_DATASETS`` (default ``./datasets``)."""
    cfg = get_cfg()
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    cfg.freeze()
    default_setup(cfg, args)
    register_builtin()
    return cfg


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """The per-process job: evaluation only, or (resumed) training."""
    cfg = setup(args)
    if args.eval_only:
        model = build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = evaluate(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            logger.info("Running inference with test-time augmentation ...")
            tta_results = evaluate(cfg, SemanticSegmentorWithTTA(cfg, model), tag="_TTA")
            results.update({f"{k}_TTA": v for k, v in tta_results.items()})
        _visualize(cfg, model)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    _visualize(cfg, trainer.model)
    return None


def _visualize(cfg: Any, model: Any) -> None:
    """Rank 0 leaves a few drawn predictions of the first test dataset in OUTPUT_DIR."""
    if comm.is_main_process() and cfg.DATASETS.TEST:
        model = getattr(model, "module", model)  # unwrap DDP
        save_visualizations(
            cfg, model, cfg.DATASETS.TEST[0], os.path.join(cfg.OUTPUT_DIR, "visualizations")
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and launch :func:`run` in every process."""
    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    launch(
        run,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    main()
