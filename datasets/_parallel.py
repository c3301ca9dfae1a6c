"""Run a function over many work items in parallel processes with a progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm


def run_parallel(func: Callable, items: Sequence, desc: str, workers: int | None = None) -> list:
    """Call ``func(*item)`` for every item using ``workers`` processes (default: all cores).

    Returns:
        The results, in the order of ``items``.
    """
    workers = workers or os.cpu_count() or 1
    chunksize = max(1, len(items) // (workers * 16))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(func, *zip(*items), chunksize=chunksize)
        return list(tqdm(results, total=len(items), desc=desc))
