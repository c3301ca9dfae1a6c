"""Config-driven training: builds model, optimizer, scheduler, data, checkpointer and hooks
around :class:`SimpleTrainer`, and evaluates on ``DATASETS.TEST``."""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.data.build import (
    build_detection_test_loader,
    build_detection_train_loader,
    build_train_mapper,
)
from mask2former.engine import hooks
from mask2former.engine.events import CommonMetricPrinter, JSONWriter, TensorboardWriter
from mask2former.engine.lr_scheduler import build_lr_scheduler
from mask2former.engine.optimizer import build_optimizer
from mask2former.engine.train_loop import SimpleTrainer
from mask2former.evaluation import (
    DatasetEvaluator,
    build_evaluator,
    inference_on_dataset,
    print_csv_format,
)
from mask2former.modeling import build_model as build_meta_arch
from mask2former.utils import comm

logger = logging.getLogger(__name__)

EVAL_RESULTS_FILE = "eval_results.json"


def create_ddp_model(model: nn.Module) -> nn.Module:
    """Wrap ``model`` in DDP when more than one process runs (as is, otherwise)."""
    if comm.get_world_size() == 1:
        return model
    device_ids = [comm.get_local_rank()] if next(model.parameters()).is_cuda else None
    # Buffers are not synchronized at every forward (as detectron2); newer torch names this
    # forward_sync_buffers and deprecates broadcast_buffers.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)
    return DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def build_model(cfg: Any) -> nn.Module:
    """The meta-architecture of ``cfg`` (``mask2former.modeling.build_model``), logged."""
    model = build_meta_arch(cfg)
    logger.info(f"Model:\n{model}")
    return model


def build_train_loader(cfg: Any) -> Iterable:
    """The infinite training loader of ``DATASETS.TRAIN`` with the configured mapper."""
    return build_detection_train_loader(cfg, mapper=build_train_mapper(cfg))


class _TrainingState:
    """The checkpointable parts of training other than the model: optimizer, scheduler,
    grad scaler (saved under one ``trainer`` key)."""

    def __init__(self, trainer: Trainer):
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        state = {
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
        }
        if trainer.grad_scaler is not None:
            state["grad_scaler"] = trainer.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        trainer = self._trainer
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.grad_scaler is not None and "grad_scaler" in state:
            trainer.grad_scaler.load_state_dict(state["grad_scaler"])


class Trainer(SimpleTrainer):
    """Training from a config: ``Trainer(cfg).resume_or_load(resume)`` then ``train()``.

    Args:
        cfg: the frozen config.
        model: a model to train instead of ``build_model(cfg)`` (tests, custom models).
        data_loader: batches to use instead of the ``DATASETS.TRAIN`` loader.
    """

    def __init__(
        self, cfg: Any, *, model: nn.Module | None = None, data_loader: Iterable | None = None
    ):
        model = model if model is not None else build_model(cfg)
        optimizer = build_optimizer(cfg, model)
        data_loader = data_loader if data_loader is not None else build_train_loader(cfg)
        amp = bool(cfg.SOLVER.AMP.ENABLED)
        on_cuda = next(model.parameters()).is_cuda
        grad_scaler = torch.amp.GradScaler("cuda") if amp and on_cuda else None
        super().__init__(
            create_ddp_model(model), data_loader, optimizer, amp=amp, grad_scaler=grad_scaler
        )
        self.cfg = cfg
        self.scheduler = build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=_TrainingState(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.register_hooks(self.build_hooks())

    def build_hooks(self) -> list[hooks.HookBase]:
        """Timer, LR scheduler, periodic checkpoint, periodic eval, writers (rank 0)."""
        cfg = self.cfg
        hook_list: list[hooks.HookBase] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.PeriodicCheckpointer(
                self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD, cfg.SOLVER.CHECKPOINT_MAX_KEEP
            ),
            hooks.EvalHook(cfg.TEST.EVAL_PERIOD, lambda: evaluate(cfg, _unwrap(self.model))),
        ]
        if comm.is_main_process():
            hook_list.append(hooks.PeriodicWriter(self.build_writers(), period=20))
        return hook_list

    def build_writers(self) -> list:
        """Console line, ``OUTPUT_DIR/metrics.json`` and TensorBoard events."""
        output_dir = self.cfg.OUTPUT_DIR
        os.makedirs(output_dir, exist_ok=True)
        return [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(os.path.join(output_dir, "metrics.json")),
            TensorboardWriter(output_dir),
        ]

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and a checkpoint in OUTPUT_DIR, restore model, optimizer,
        scheduler, scaler, iteration and RNG states; otherwise load ``MODEL.WEIGHTS``.

        With ``DATALOADER.NUM_WORKERS 0`` the data stream is replayed up to the resumed
        iteration, so a resumed run sees the batches an uninterrupted run would.
        """
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if not (resume and self.checkpointer.has_checkpoint()):
            return
        self.start_iter = checkpoint.get("iteration", -1) + 1
        if self.start_iter > 0 and self.cfg.DATALOADER.NUM_WORKERS == 0:
            logger.info(f"Replaying {self.start_iter} batches to restore the data order")
            self.skip_batches(self.start_iter)
        rng_states = checkpoint.get("rng_states")
        if rng_states is not None and len(rng_states) == comm.get_world_size():
            hooks.restore_rng_state(rng_states[comm.get_rank()])
        elif rng_states is not None:
            logger.warning(
                f"The checkpoint holds RNG states of {len(rng_states)} processes, this run has "
                f"{comm.get_world_size()}; random numbers will differ from the original run"
            )

    def train(self) -> None:  # type: ignore[override]
        """Train from ``start_iter`` to ``SOLVER.MAX_ITER``."""
        super().train(self.start_iter, self.max_iter)


def evaluate(
    cfg: Any,
    model: nn.Module,
    evaluators: list[DatasetEvaluator] | None = None,
    *,
    tag: str = "",
) -> dict[str, Any]:
    """Evaluate ``model`` on every dataset of ``DATASETS.TEST``, ``TEST.IMS_PER_BATCH``
    images per forward pass.

    Results are logged as tables and CSV lines, and written by rank 0 to
    ``OUTPUT_DIR/eval_results{tag}.json``.

    Args:
        evaluators: one per test dataset; by default chosen by :func:`build_evaluator`
            (writing under ``OUTPUT_DIR/inference{tag}/<dataset>``).
        tag: suffix of the output names, e.g. "_TTA".

    Returns:
        ``{task: {metric: value}}`` for one test dataset, ``{dataset: {task: ...}}`` for
        several ({} on ranks other than 0).
    """
    if evaluators is not None and len(evaluators) != len(cfg.DATASETS.TEST):
        raise ValueError(
            f"{len(evaluators)} evaluators given for {len(cfg.DATASETS.TEST)} datasets in "
            f"DATASETS.TEST {tuple(cfg.DATASETS.TEST)}"
        )
    if cfg.TEST.IMS_PER_BATCH < 1:
        raise ValueError(f"TEST.IMS_PER_BATCH must be >= 1, got {cfg.TEST.IMS_PER_BATCH!r}")
    results: dict[str, Any] = OrderedDict()
    for index, dataset_name in enumerate(cfg.DATASETS.TEST):
        data_loader = build_detection_test_loader(
            cfg, dataset_name, batch_size=cfg.TEST.IMS_PER_BATCH
        )
        if evaluators is not None:
            evaluator = evaluators[index]
        else:
            output_folder = os.path.join(cfg.OUTPUT_DIR, f"inference{tag}", dataset_name)
            evaluator = build_evaluator(cfg, dataset_name, output_folder)
        results[dataset_name] = inference_on_dataset(model, data_loader, evaluator)
        if comm.is_main_process():
            logger.info(f"Evaluation results for {dataset_name} in csv format:")
            print_csv_format(results[dataset_name])
    if len(results) == 1:
        results = next(iter(results.values()))
    if comm.is_main_process() and results:
        name, ext = os.path.splitext(EVAL_RESULTS_FILE)
        save_results(results, os.path.join(cfg.OUTPUT_DIR, f"{name}{tag}{ext}"))
    return results


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def save_results(results: dict[str, Any], path: str) -> None:
    """Write ``results`` as strict JSON (NaN metrics, e.g. AP of an absent size range, become
    ``null``), atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_nan_to_none(results), f, indent=2, allow_nan=False)
    os.replace(tmp, path)
    logger.info(f"Evaluation results saved to {path}")
