"""Event storage (scalars logged during training) and the writers that flush it:
console line, ``metrics.json`` (one JSON object per line) and TensorBoard."""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections import defaultdict
from typing import Any

import torch
from fvcore.common.history_buffer import HistoryBuffer

logger = logging.getLogger(__name__)

_STORAGE_STACK: list[EventStorage] = []


def get_event_storage() -> EventStorage:
    """The innermost active :class:`EventStorage` (raises outside ``with EventStorage()``)."""
    if not _STORAGE_STACK:
        raise RuntimeError("get_event_storage() was called outside of a `with EventStorage():`.")
    return _STORAGE_STACK[-1]


class EventStorage:
    """Scalar history per name, indexed by the training iteration.

    Use as a context manager; inside it :func:`get_event_storage` returns this object.
    """

    def __init__(self, start_iter: int = 0):
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest: dict[str, tuple[float, int]] = {}
        self.iter = start_iter

    def put_scalar(self, name: str, value: float | torch.Tensor, smoothing_hint: bool = True):
        """Record ``value`` for ``name`` at the current iteration.

        Args:
            smoothing_hint: whether writers should report a windowed median instead of the
                latest value (True for noisy values such as losses).
        """
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, self.iter)
        self._latest[name] = (value, self.iter)
        previous = self._smoothing_hints.get(name)
        if previous is not None and previous != smoothing_hint:
            raise ValueError(f"Scalar {name!r} was put with different smoothing_hint values.")
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, **kwargs: float) -> None:
        """Record several scalars at once."""
        for name, value in kwargs.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint)

    def history(self, name: str) -> HistoryBuffer:
        """The full history of ``name`` (raises KeyError naming the known scalars)."""
        if name not in self._history:
            raise KeyError(f"No scalar named {name!r}; known: {sorted(self._history)}")
        return self._history[name]

    def histories(self) -> dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (latest value, iteration it was put at)."""
        return self._latest

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like :meth:`latest`, with the windowed median for smoothed scalars."""
        result = {}
        for name, (value, itr) in self._latest.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(window_size)
            result[name] = (value, itr)
        return result

    def step(self) -> None:
        """Advance to the next iteration (the trainer calls this after every step)."""
        self.iter += 1

    def __enter__(self) -> EventStorage:
        _STORAGE_STACK.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert _STORAGE_STACK[-1] is self
        _STORAGE_STACK.pop()


class EventWriter:
    """Base class of writers: ``write()`` is called periodically, ``close()`` at the end."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Appends one JSON object per iteration that got new scalars (``metrics.json``)."""

    def __init__(self, json_file: str, window_size: int = 20):
        self._file = open(json_file, "a")  # noqa: SIM115 - closed in close()
        self._window_size = window_size
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        per_iter: dict[int, dict[str, float]] = defaultdict(dict)
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                per_iter[itr][name] = value
        for itr in sorted(per_iter):
            record = dict(per_iter[itr], iteration=itr)
            self._file.write(json.dumps(record, sort_keys=True) + "\n")
        if per_iter:
            self._last_write = max(per_iter)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class TensorboardWriter(EventWriter):
    """Writes every new scalar to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str, window_size: int = 20):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=log_dir)
        self._window_size = window_size
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        newest = self._last_write
        for name, (value, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                self._writer.add_scalar(name, value, itr)
                newest = max(newest, itr)
        self._last_write = newest
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Logs one line: ETA, iteration, losses, iteration/data time, lr and memory."""

    def __init__(self, max_iter: int | None = None, window_size: int = 20):
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: tuple[int, float] | None = None

    def _eta(self, storage: EventStorage) -> str:
        if self._max_iter is None:
            return ""
        remaining = self._max_iter - storage.iter - 1
        try:
            seconds = storage.history("time").median(1000) * remaining
            storage.put_scalar("eta_seconds", seconds, smoothing_hint=False)
        except KeyError:
            # No timed iteration yet: estimate from the wall time between two writes.
            now = time.perf_counter()
            seconds = None
            if self._last_write is not None:
                last_iter, last_time = self._last_write
                per_iter = (now - last_time) / max(storage.iter - last_iter, 1)
                seconds = per_iter * remaining
            self._last_write = (storage.iter, now)
            if seconds is None:
                return ""
        return f"eta: {datetime.timedelta(seconds=int(seconds))}  "

    def write(self) -> None:
        storage = get_event_storage()
        if self._max_iter is not None and storage.iter == self._max_iter:
            return  # after training: the eval hook's scalars land here, not a train iteration
        histories = storage.histories()

        def fmt(name: str, spec: str) -> str:
            if name not in histories:
                return ""
            return f"{name}: {format(histories[name].median(self._window_size), spec)}  "

        losses = "  ".join(
            f"{name}: {buf.median(self._window_size):.4g}"
            for name, buf in histories.items()
            if "loss" in name
        )
        lr = f"lr: {histories['lr'].latest():.5g}  " if "lr" in histories else ""
        memory = ""
        if torch.cuda.is_available():
            memory = f"max_mem: {torch.cuda.max_memory_allocated() / 1024**2:.0f}M"
        iter_total = f"/{self._max_iter}" if self._max_iter is not None else ""
        logger.info(
            f" {self._eta(storage)}iter: {storage.iter}{iter_total}  {losses}  "
            f"{fmt('time', '.4f')}{fmt('data_time', '.4f')}{lr}{memory}".rstrip()
        )
