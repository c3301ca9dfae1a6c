"""The training loop: a hook-driven iteration loop and a small ``run_step``."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mask2former.engine.events import EventStorage, get_event_storage
from mask2former.utils import comm

logger = logging.getLogger(__name__)


class HookBase:
    """Called by :class:`TrainerBase` around training and around every iteration.

    ``self.trainer`` is set (as a weak proxy) when the hook is registered.
    """

    trainer: TrainerBase

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class TrainerBase:
    """Iterates ``run_step`` from ``start_iter`` to ``max_iter`` and calls the hooks.

    Attributes:
        iter: the current iteration (inside hooks: the one being run).
        storage: the :class:`EventStorage` of this run.
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage: EventStorage

    def register_hooks(self, hooks: Sequence[HookBase | None]) -> None:
        """Append hooks (``None`` entries are skipped); they run in the given order."""
        for hook in hooks:
            if hook is None:
                continue
            # A weak proxy avoids a reference cycle trainer <-> hook.
            hook.trainer = weakref.proxy(self)
            self._hooks.append(hook)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``."""
        logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                # Hooks' after_train see iter == max_iter, as after the last increment.
                self.iter += 1
            finally:
                self.after_train()

    def before_train(self) -> None:
        for hook in self._hooks:
            hook.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for hook in self._hooks:
            hook.after_train()

    def before_step(self) -> None:
        self.storage.iter = self.iter
        for hook in self._hooks:
            hook.before_step()

    def after_step(self) -> None:
        for hook in self._hooks:
            hook.after_step()

    def run_step(self) -> None:
        raise NotImplementedError


_DIVERGENCE_ADVICE = (
    "Lower SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS, or set SOLVER.AMP.ENABLED False; "
    "resume from the last checkpoint in OUTPUT_DIR with --resume."
)


def _autocast_context(enabled: bool, device_type: str) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA, bf16 autocast on CPU, or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device_type, dtype=dtype)


class SimpleTrainer(TrainerBase):
    """One optimizer step per iteration: load a batch, compute the loss dict, backward, step.

    Args:
        model: in training mode, ``model(batch) -> dict[str, Tensor]`` of weighted losses
            (or a single loss tensor).
        data_loader: an iterable of batches (usually infinite).
        optimizer: the optimizer over ``model``'s parameters (any clipping lives in its step).
        amp: run the forward under autocast (fp16 on CUDA with ``grad_scaler``; bf16 on CPU).
        grad_scaler: a ``torch.amp.GradScaler`` for fp16; ``None`` for fp32/bf16.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        amp: bool = False,
        grad_scaler: torch.amp.GradScaler | None = None,
    ):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.amp = amp
        self.grad_scaler = grad_scaler
        self._data_iter_obj: Any = None

    @property
    def _data_iter(self) -> Any:
        # Created lazily, so that creating the trainer does not consume random numbers.
        if self._data_iter_obj is None:
            self._data_iter_obj = iter(self.data_loader)
        return self._data_iter_obj

    def skip_batches(self, num_batches: int) -> None:
        """Draw and drop ``num_batches`` batches (replays the data order when resuming)."""
        for _ in range(num_batches):
            next(self._data_iter)

    def run_step(self) -> None:
        assert self.model.training, "SimpleTrainer: the model was switched to eval mode!"
        start = time.perf_counter()
        data = next(self._data_iter)
        data_time = time.perf_counter() - start

        device_type = "cuda" if next(self.model.parameters()).is_cuda else "cpu"
        try:
            with _autocast_context(self.amp, device_type):
                loss_dict = self.model(data)
        except FloatingPointError as e:
            # Predictions that are already NaN/inf stop the matcher before any loss exists.
            raise FloatingPointError(
                f"Non-finite predictions at iteration={self.iter}, before the losses: {e} "
                f"{_DIVERGENCE_ADVICE}"
            ) from e
        if isinstance(loss_dict, torch.Tensor):
            loss_dict = {"total_loss": loss_dict}
        losses = sum(loss.float() for loss in loss_dict.values())

        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()

        # Before the optimizer step, so a non-finite loss never reaches the weights.
        self.write_metrics(loss_dict, data_time)

        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            self.storage.put_scalar("grad_scaler", self.grad_scaler.get_scale())
        else:
            self.optimizer.step()

    def write_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float) -> None:
        """Average the losses over ranks, put them in the storage and stop on NaN/inf.

        Raises:
            FloatingPointError: the summed loss is not finite on some rank.
        """
        metrics = {name: float(value.detach().float().item()) for name, value in loss_dict.items()}
        metrics["data_time"] = data_time
        all_metrics = comm.all_gather(metrics)
        for rank, rank_metrics in enumerate(all_metrics):
            total = sum(v for k, v in rank_metrics.items() if k != "data_time")
            if not math.isfinite(total):
                losses = ", ".join(f"{k}={v:.4g}" for k, v in rank_metrics.items())
                raise FloatingPointError(
                    f"Loss became infinite or NaN at iteration={self.iter} on rank {rank}: "
                    f"{losses}. Training stopped before the optimizer step. {_DIVERGENCE_ADVICE}"
                )
        if not comm.is_main_process():
            return
        storage = get_event_storage()
        # The slowest rank's data time tells whether loading is a bottleneck.
        storage.put_scalar("data_time", max(m.pop("data_time") for m in all_metrics))
        averaged = {k: sum(m[k] for m in all_metrics) / len(all_metrics) for k in all_metrics[0]}
        storage.put_scalar("total_loss", sum(averaged.values()))
        if len(averaged) > 1:
            storage.put_scalars(**averaged)
