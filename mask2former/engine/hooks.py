"""Training hooks: timing, LR schedule, periodic checkpoints, periodic evaluation, writers."""

from __future__ import annotations

import datetime
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from fvcore.common.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer

from mask2former.engine.events import EventWriter
from mask2former.engine.train_loop import HookBase
from mask2former.utils import comm

logger = logging.getLogger(__name__)

_PERIODIC_NAME = re.compile(r"model_\d{7}\.pth")


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        # Plain Python values, so that checkpoints load with torch.load(weights_only=True).
        "numpy": (name, keys.tolist(), pos, has_gauss, cached_gaussian),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class IterationTimer(HookBase):
    """Puts the time of every iteration (``time``) and logs the overall speed at the end.

    Args:
        warmup_iter: first iterations left out of the timing (they include set-up costs).
    """

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._train_start = 0.0
        self._timed_seconds = 0.0
        self._timed_iters = 0

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        seconds = time.perf_counter() - self._step_start
        if self.trainer.iter - self.trainer.start_iter + 1 > self._warmup_iter:
            self.trainer.storage.put_scalar("time", seconds)
            self._timed_seconds += seconds
            self._timed_iters += 1

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        if self._timed_iters > 0:
            logger.info(
                f"Overall training speed: {self._timed_iters} iterations in "
                f"{datetime.timedelta(seconds=int(self._timed_seconds))} "
                f"({self._timed_seconds / self._timed_iters:.4f} s / it)"
            )
        logger.info(
            f"Total training time: {datetime.timedelta(seconds=int(total))} "
            f"({datetime.timedelta(seconds=int(total - self._timed_seconds))} outside timed steps)"
        )


class LRScheduler(HookBase):
    """Steps the LR scheduler after every iteration and records ``lr``: the LR of the group
    with the highest initial LR (the base LR when a backbone multiplier is <= 1)."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any):
        self._optimizer = optimizer
        self.scheduler = scheduler
        groups = optimizer.param_groups
        self._group_id = max(range(len(groups)), key=lambda i: groups[i].get("initial_lr", 0.0))

    def after_step(self) -> None:
        lr = self._optimizer.param_groups[self._group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """fvcore's ``PeriodicCheckpointer`` as a hook (as detectron2's): saves
    ``model_{iter:07d}`` every ``period`` iterations and ``model_final`` after the last one
    (instead of, not beside, a periodic file of that iteration).

    Must be registered on every rank: it gathers every rank's RNG states (a collective) so
    that a resumed run continues with the same random numbers; only rank 0 writes.

    Args:
        checkpointer: a ``DetectionCheckpointer`` (``save(name, **extra)``, ``save_dir``).
        period: iterations between checkpoints (<= 0: only the final one).
        max_keep: keep only the newest ``max_keep`` periodic checkpoints in ``save_dir``
            (``SOLVER.CHECKPOINT_MAX_KEEP``; <= 0 keeps all). ``model_final.pth`` and the file
            ``last_checkpoint`` names are never deleted.
    """

    def __init__(self, checkpointer: Any, period: int, max_keep: int = 0):
        # fvcore's max_to_keep only knows this run's files; _delete_old_checkpoints also
        # prunes those of the run a resumed one continues. model_final is saved below.
        super().__init__(checkpointer, period, max_iter=None, max_to_keep=None)
        self.max_keep = max_keep

    def after_step(self) -> None:
        iteration = self.trainer.iter
        is_final = iteration >= self.trainer.max_iter - 1
        is_periodic = self.period > 0 and (iteration + 1) % self.period == 0
        if not (is_final or is_periodic):
            return
        rng_states = comm.all_gather(capture_rng_state())
        if not comm.is_main_process():
            return
        if is_final:
            self.save(f"{self.file_prefix}_final", iteration=iteration, rng_states=rng_states)
        else:
            self.step(iteration, rng_states=rng_states)
        if self.max_keep > 0:
            self._delete_old_checkpoints()

    def _delete_old_checkpoints(self) -> None:
        save_dir = self.checkpointer.save_dir
        if not save_dir or not os.path.isdir(save_dir):
            return
        # Scanning the folder (not remembering this run's saves) also prunes a resumed run's.
        periodic = sorted(f for f in os.listdir(save_dir) if _PERIODIC_NAME.fullmatch(f))
        protected = os.path.basename(self.checkpointer.get_checkpoint_file())
        for name in periodic[: -self.max_keep]:
            if name != protected:
                os.remove(os.path.join(save_dir, name))
                logger.info("Deleted old checkpoint %s (SOLVER.CHECKPOINT_MAX_KEEP)", name)


def flatten_results_dict(results: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_results_dict(value, name))
        else:
            flat[name] = value
    return flat


class EvalHook(HookBase):
    """Runs ``eval_function`` every ``eval_period`` iterations and after the last one, and
    puts the returned metrics (nested dict of floats) into the storage as ``task/metric``.

    The evaluation runs with the training RNG states saved and restored around it, so
    evaluating does not change the training's random numbers. Must run on every rank.
    """

    def __init__(self, eval_period: int, eval_function: Callable[[], Mapping | None]):
        self._period = eval_period
        self._func = eval_function

    def _do_eval(self) -> None:
        rng_state = capture_rng_state()
        try:
            results = self._func()
        finally:
            restore_rng_state(rng_state)
        if results:
            if not isinstance(results, Mapping):
                raise TypeError(f"EvalHook: eval_function must return a dict, got {results!r}")
            scalars = {}
            for name, value in flatten_results_dict(results).items():
                try:
                    scalars[name] = float(value)
                except (TypeError, ValueError) as e:
                    raise ValueError(
                        f"EvalHook: eval_function must return a nested dict of floats; "
                        f"got {name!r}: {value!r}"
                    ) from e
            finite = {k: v for k, v in scalars.items() if not math.isnan(v)}
            self.trainer.storage.put_scalars(**finite, smoothing_hint=False)
        comm.synchronize()

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        # The last evaluation runs in after_train.
        if (
            self._period > 0
            and next_iter % self._period == 0
            and next_iter != self.trainer.max_iter
        ):
            self._do_eval()

    def after_train(self) -> None:
        # Only after a completed training (not after an exception).
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do_eval()


class PeriodicWriter(HookBase):
    """Calls every writer's ``write()`` every ``period`` iterations and at the end."""

    def __init__(self, writers: Sequence[EventWriter], period: int = 20):
        self._writers = list(writers)
        self._period = period

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0 or (
            self.trainer.iter == self.trainer.max_iter - 1
        ):
            for writer in self._writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self._writers:
            writer.write()
            writer.close()
