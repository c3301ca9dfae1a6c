"""Timing helper shared by the benchmarks: interleaved rounds, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable


def interleaved_medians(
    fns: dict[Hashable, Callable[[], object]], repeats: int
) -> dict[Hashable, float]:
    """Median seconds of each function: one warm-up each, then ``repeats`` rounds over all of
    them (interleaving spreads machine noise evenly over the compared variants)."""
    for fn in fns.values():
        fn()
    times: dict[Hashable, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
