"""``mask2former-train`` / ``tools/train_net.py``: train or evaluate a model from a YAML config
with detectron2's command line (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from datetime import timedelta
from typing import Any

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.checkpoint.detection_checkpoint import LAST_CHECKPOINT_FILE
from mask2former.config import get_cfg
from mask2former.data import register_builtin, register_custom_datasets
from mask2former.engine.defaults import default_argument_parser, default_setup
from mask2former.engine.launch import launch
from mask2former.engine.trainer import Trainer, build_model, evaluate
from mask2former.engine.visualize import save_visualizations
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA
from mask2former.utils import comm
from mask2former.utils.device import resolve_device

logger = logging.getLogger(__name__)


def setup(args: argparse.Namespace) -> Any:
    """Config from defaults + ``--config-file`` + trailing overrides, frozen; then the
    per-process set-up (output dir, logs, ``config.yaml``, seeds) and the registration of the
    builtin datasets under ``$DETECTRON2_DATASETS`` (default ``./datasets``) and of the
    datasets described in ``DATASETS.CUSTOM``."""
    cfg = get_cfg()
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    # The original configs say "cuda"; on a machine without one, run on the CPU (one warning).
    cfg.MODEL.DEVICE = str(resolve_device(cfg.MODEL.DEVICE))
    cfg.freeze()
    default_setup(cfg, args)
    register_builtin()
    register_custom_datasets(cfg)
    return cfg


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    """The per-process job: evaluation only, or (resumed) training."""
    cfg = setup(args)
    if args.eval_only:
        model = build_model(cfg)
        if not cfg.MODEL.WEIGHTS and not (args.resume and _has_checkpoint(cfg)):
            logger.warning(
                "--eval-only without MODEL.WEIGHTS (and nothing to --resume from in %s): "
                "EVALUATING A RANDOMLY INITIALISED MODEL; its results mean nothing. Pass "
                "MODEL.WEIGHTS path/to/model_final.pth.",
                cfg.OUTPUT_DIR,
            )
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


def _has_checkpoint(cfg: Any) -> bool:
    return os.path.isfile(os.path.join(cfg.OUTPUT_DIR, LAST_CHECKPOINT_FILE))


def _visualize(cfg: Any, model: Any) -> None:
    """Rank 0 leaves a few drawn predictions of the first test dataset in OUTPUT_DIR."""
    if comm.is_main_process() and cfg.DATASETS.TEST:
        model = getattr(model, "module", model)  # unwrap DDP
        save_visualizations(
            cfg, model, cfg.DATASETS.TEST[0], os.path.join(cfg.OUTPUT_DIR, "visualizations")
        )


# Errors that describe a bad input (file, key, setting, data) and say what to fix: the
# message is what the user needs, the traceback goes to DEBUG.
_INPUT_ERRORS = (ValueError, OSError, KeyError, FloatingPointError)
TRACEBACK_ENV_VAR = "MASK2FORMER_TRACEBACK"


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and launch :func:`run` in every process.

    A failure ends the process with exit status 1 and the error as the last line on stderr.
    """
    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    try:
        launch(
            run,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            timeout=timedelta(seconds=args.dist_timeout),
        )
    except _INPUT_ERRORS as e:
        logger.debug("Traceback of the error below:", exc_info=True)
        if os.environ.get(TRACEBACK_ENV_VAR) == "1":
            traceback.print_exc()
        print(f"\nError: {type(e).__name__}: {_message(e)}", file=sys.stderr)
        print(f"(set {TRACEBACK_ENV_VAR}=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
    except Exception as e:
        # Not an input error: show where it happened, and still end on the message.
        traceback.print_exc()
        print(f"\nError: {type(e).__name__}: {_message(e)}", file=sys.stderr)
        sys.exit(1)


def _message(error: BaseException) -> str:
    # KeyError's str() is the repr of its argument; show the text itself.
    if isinstance(error, KeyError) and type(error).__str__ is KeyError.__str__ and error.args:
        return str(error.args[0])
    return str(error)


if __name__ == "__main__":
    main()
