"""Training engine: hook-driven train loop, optimizer and LR schedules, DDP launch,
command-line set-up, event writers and the config-driven :class:`Trainer`."""

from mask2former.engine.defaults import default_argument_parser, default_setup, setup_logger
from mask2former.engine.events import (
    CommonMetricPrinter,
    EventStorage,
    JSONWriter,
    TensorboardWriter,
    get_event_storage,
)
from mask2former.engine.hooks import (
    EvalHook,
    IterationTimer,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
)
from mask2former.engine.launch import launch
from mask2former.engine.lr_scheduler import WarmupPolyLR, build_lr_scheduler
from mask2former.engine.optimizer import build_optimizer, get_param_groups
from mask2former.engine.train_loop import HookBase, SimpleTrainer, TrainerBase

__all__ = [
    "CommonMetricPrinter",
    "EvalHook",
    "EventStorage",
    "HookBase",
    "IterationTimer",
    "JSONWriter",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "SimpleTrainer",
    "TensorboardWriter",
    "TrainerBase",
    "WarmupPolyLR",
    "build_lr_scheduler",
    "build_optimizer",
    "default_argument_parser",
    "default_setup",
    "get_event_storage",
    "get_param_groups",
    "launch",
    "setup_logger",
]
