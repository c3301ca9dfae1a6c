"""Iteration-based learning-rate schedules: ``WarmupPolyLR`` (DeepLab, used by the
Mask2Former configs) and detectron2's ``WarmupMultiStepLR`` / ``WarmupCosineLR`` /
``WarmupStepWithFixedGammaLR``, selected by ``SOLVER.LR_SCHEDULER_NAME``.

``last_epoch`` of torch's schedulers counts iterations here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
    StepWithFixedGammaParamScheduler,
)
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

SCHEDULER_NAMES = (
    "WarmupPolyLR",
    "WarmupMultiStepLR",
    "WarmupCosineLR",
    "WarmupStepWithFixedGammaLR",
)


def warmup_factor_at_iter(method: str, iteration: int, warmup_iters: int, factor: float) -> float:
    """LR multiplier of the warmup at ``iteration`` (1.0 once warmup is over).

    Args:
        method: "linear" (ramp from ``factor`` to 1) or "constant" (``factor`` throughout).
    """
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return factor
    if method == "linear":
        alpha = iteration / warmup_iters
        return factor * (1 - alpha) + alpha
    raise ValueError(f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant', got {method!r}")


class _CompactStateScheduler(LRScheduler):
    """Saves only what changes during training (base LRs and the iteration)."""

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the iteration and set the optimizer's LRs to the restored iteration's."""
        super().load_state_dict(state_dict)
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


class WarmupPolyLR(_CompactStateScheduler):
    """``lr = base_lr * warmup(it) * (1 - it / max_iters) ** power``.

    With ``constant_ending > 0``, after warmup the multiplier never drops below it.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        *,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        power: float = 0.9,
        constant_ending: float = 0.0,
        last_epoch: int = -1,
    ):
        self.max_iters = max_iters
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.power = power
        self.constant_ending = constant_ending
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        warmup = warmup_factor_at_iter(
            self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor
        )
        poly = math.pow(1.0 - self.last_epoch / self.max_iters, self.power)
        if self.constant_ending > 0 and warmup == 1.0 and poly < self.constant_ending:
            return [base_lr * self.constant_ending for base_lr in self.base_lrs]
        return [base_lr * warmup * poly for base_lr in self.base_lrs]


class WarmupParamScheduler(CompositeParamScheduler):
    """Prepends a warmup (linear or constant, starting at ``warmup_factor`` times the
    scheduler's initial value) to an fvcore ``ParamScheduler``.

    Args:
        warmup_length: warmup length as a fraction of training, in [0, 1].
        rescale_interval: run the wrapped scheduler over the post-warmup part only
            (instead of on the absolute training fraction).
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        end_value = scheduler(0.0) if rescale_interval else scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup: ParamScheduler = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(
                f"SOLVER.WARMUP_METHOD must be 'linear' or 'constant', got {warmup_method!r}"
            )
        super().__init__(
            [warmup, scheduler],
            interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
            lengths=[warmup_length, 1 - warmup_length],
        )


class LRMultiplier(_CompactStateScheduler):
    """Sets every group's LR to its initial LR times ``multiplier(iter / max_iter)``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        multiplier: ParamScheduler,
        max_iter: int,
        last_iter: int = -1,
    ):
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(f"multiplier must be an fvcore ParamScheduler, got {multiplier!r}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def get_lr(self) -> list[float]:
        factor = self._multiplier(self.last_epoch / self._max_iter)
        return [base_lr * factor for base_lr in self.base_lrs]


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> LRScheduler:
    """Build the scheduler named by ``SOLVER.LR_SCHEDULER_NAME`` from ``cfg.SOLVER``."""
    solver = cfg.SOLVER
    name = solver.LR_SCHEDULER_NAME
    if name == "WarmupPolyLR":
        return WarmupPolyLR(
            optimizer,
            solver.MAX_ITER,
            warmup_factor=solver.WARMUP_FACTOR,
            warmup_iters=solver.WARMUP_ITERS,
            warmup_method=solver.WARMUP_METHOD,
            power=solver.POLY_LR_POWER,
            constant_ending=solver.POLY_LR_CONSTANT_ENDING,
        )
    if name == "WarmupMultiStepLR":
        steps = [s for s in solver.STEPS if s <= solver.MAX_ITER]
        if len(steps) != len(solver.STEPS):
            logger.warning(
                f"SOLVER.STEPS {tuple(solver.STEPS)} has values above SOLVER.MAX_ITER "
                f"{solver.MAX_ITER}; they are ignored."
            )
        sched: ParamScheduler = MultiStepParamScheduler(
            values=[solver.GAMMA**k for k in range(len(steps) + 1)],
            milestones=steps,
            num_updates=solver.MAX_ITER,
        )
    elif name == "WarmupCosineLR":
        end_value = solver.BASE_LR_END / solver.BASE_LR
        if not 0.0 <= end_value <= 1.0:
            raise ValueError(
                f"SOLVER.BASE_LR_END ({solver.BASE_LR_END}) must be in [0, SOLVER.BASE_LR "
                f"({solver.BASE_LR})]"
            )
        sched = CosineParamScheduler(1.0, end_value)
    elif name == "WarmupStepWithFixedGammaLR":
        sched = StepWithFixedGammaParamScheduler(
            base_value=1.0,
            gamma=solver.GAMMA,
            num_decays=solver.NUM_DECAYS,
            num_updates=solver.MAX_ITER,
        )
    else:
        raise ValueError(f"SOLVER.LR_SCHEDULER_NAME must be one of {SCHEDULER_NAMES}, got {name!r}")
    sched = WarmupParamScheduler(
        sched,
        solver.WARMUP_FACTOR,
        min(solver.WARMUP_ITERS / solver.MAX_ITER, 1.0),
        solver.WARMUP_METHOD,
        solver.RESCALE_INTERVAL,
    )
    return LRMultiplier(optimizer, multiplier=sched, max_iter=solver.MAX_ITER)
