"""The evaluator protocol (reset / process / evaluate) and inference over a dataset."""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mask2former.utils import comm

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Accumulates model outputs over a dataset and computes metrics at the end.

    ``reset()`` before a pass, ``process(inputs, outputs)`` for every batch, then
    ``evaluate()``, which returns ``{task: {metric: value}}`` (on rank 0; may return None
    on other ranks of a distributed evaluation).
    """

    def reset(self) -> None:
        pass

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        pass

    def evaluate(self) -> dict[str, Any] | None:
        pass


class DatasetEvaluators(DatasetEvaluator):
    """Runs several evaluators and merges their results (task names must not clash)."""

    def __init__(self, evaluators: Sequence[DatasetEvaluator]):
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> dict[str, Any]:
        results: dict[str, Any] = OrderedDict()
        for evaluator in self._evaluators:
            result = evaluator.evaluate()
            if comm.is_main_process() and result is not None:
                for task, metrics in result.items():
                    if task in results:
                        raise KeyError(
                            f"Two evaluators report the task {task!r}; "
                            f"{type(evaluator).__name__} would overwrite the other's results"
                        )
                    results[task] = metrics
        return results


@contextlib.contextmanager
def inference_context(model: nn.Module) -> Iterator[None]:
    """Puts ``model`` in eval mode and restores its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def inference_on_dataset(
    model: Callable[[Any], Any],
    data_loader: Iterable,
    evaluator: DatasetEvaluator | Sequence[DatasetEvaluator] | None,
    log_period_s: float = 5.0,
) -> dict[str, Any]:
    """Run ``model`` over every batch of ``data_loader`` and evaluate.

    Progress (done/total, seconds per batch, ETA) is logged at most every ``log_period_s``
    seconds. Distributed: each rank runs its shard; the evaluators gather.

    Args:
        model: callable on a batch (an ``nn.Module`` is put in eval mode meanwhile).
        data_loader: batches with a length.
        evaluator: one evaluator, a list of them, or None (only runs inference).

    Returns:
        The evaluators' results (``{}`` on ranks other than 0).
    """
    if evaluator is None:
        evaluator = DatasetEvaluators([])
    elif not isinstance(evaluator, DatasetEvaluator):
        evaluator = DatasetEvaluators(evaluator)
    total = len(data_loader)  # type: ignore[arg-type]
    logger.info(f"Start inference on {total} batches")
    evaluator.reset()
    num_warmup = min(5, total - 1)
    start = time.perf_counter()
    compute_time = 0.0
    last_log = start
    with contextlib.ExitStack() as stack:
        if isinstance(model, nn.Module):
            stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        for idx, inputs in enumerate(data_loader):
            if idx == num_warmup:
                start, compute_time = time.perf_counter(), 0.0
            compute_start = time.perf_counter()
            outputs = model(inputs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            compute_time += time.perf_counter() - compute_start
            evaluator.process(inputs, outputs)
            now = time.perf_counter()
            if now - last_log >= log_period_s and idx >= num_warmup:
                done_after_warmup = idx + 1 - num_warmup
                per_batch = (now - start) / max(done_after_warmup, 1)
                eta = datetime.timedelta(seconds=int(per_batch * (total - idx - 1)))
                logger.info(
                    f"Inference done {idx + 1}/{total}. {per_batch:.4f} s / batch. ETA={eta}"
                )
                last_log = now
    timed = max(total - num_warmup, 1)
    elapsed = time.perf_counter() - start
    logger.info(
        f"Total inference time: {datetime.timedelta(seconds=int(elapsed))} "
        f"({elapsed / timed:.4f} s / batch per device, on {comm.get_world_size()} devices); "
        f"pure compute {compute_time / timed:.4f} s / batch"
    )
    results = evaluator.evaluate()
    return results if results is not None else {}


def print_csv_format(results: Mapping[str, Mapping[str, float]]) -> None:
    """Log every task's main metrics as a copy-pastable CSV line (per-class ones left out)."""
    for task, metrics in results.items():
        main = {k: v for k, v in metrics.items() if "-" not in k}
        logger.info(f"copypaste: Task: {task}")
        logger.info("copypaste: " + ",".join(main.keys()))
        logger.info("copypaste: " + ",".join(f"{v:.4f}" for v in main.values()))
