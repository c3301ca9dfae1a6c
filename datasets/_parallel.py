"""Run a function over many work items in parallel processes with a progress bar; a failing
item is reported by name and skipped, and the job fails at the end with the count."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from mask2former.utils.file_failures import FILE_ERRORS, FileFailures


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Guarded:
    """``func`` with the errors of a bad input file returned instead of raised (picklable)."""

    func: Callable

    def __call__(self, *args: Any) -> Any:
        try:
            return self.func(*args)
        except FILE_ERRORS as e:
            return _Failed(e)


def run_parallel(
    func: Callable, items: Sequence, desc: str, failures: FileFailures, workers: int | None = None
) -> list:
    """Call ``func(*item)`` for every item using ``workers`` processes (default: all cores).

    An item whose call raises one of ``FILE_ERRORS`` is recorded in ``failures`` under its
    first element (its input file) and left out of the results; the others go on.

    Returns:
        The results of the items that succeeded, in the order of ``items``.
    """
    workers = workers or os.cpu_count() or 1
    chunksize = max(1, len(items) // (workers * 16))
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        outputs = pool.map(_Guarded(func), *zip(*items), chunksize=chunksize)
        for item, output in tqdm(zip(items, outputs), total=len(items), desc=desc):
            if isinstance(output, _Failed):
                failures.record(str(item[0]), output.error)
            else:
                results.append(output)
    return results


def exit_on_failures(failures: FileFailures, total: int) -> None:
    """End the script with exit status 1 and the count if any item failed."""
    try:
        failures.raise_if_any(total)
    except ValueError as e:
        raise SystemExit(f"Error: {e}") from e
