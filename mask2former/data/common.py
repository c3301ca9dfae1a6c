"""Dataset wrappers used by the loaders: list -> map-style dataset, mapping, iterable sampling
with worker sharding, and aspect-ratio batching."""

from __future__ import annotations

import copy
import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch.utils.data as torchdata

logger = logging.getLogger(__name__)

__all__ = ["AspectRatioGroupedDataset", "DatasetFromList", "MapDataset", "ToIterableDataset"]


class DatasetFromList(torchdata.Dataset):
    """A map-style dataset over a list of records (deep-copied on access when ``copy``)."""

    def __init__(self, records: list[Any], copy: bool = True) -> None:
        self._records = records
        self._copy = copy

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, idx: int) -> Any:
        record = self._records[idx]
        return copy.deepcopy(record) if self._copy else record


class MapDataset(torchdata.Dataset):
    """Applies ``map_func`` to items; when it returns None another random item is tried.

    Args:
        dataset: map-style dataset.
        map_func: e.g. a dataset mapper.
    """

    def __init__(self, dataset: torchdata.Dataset, map_func: Callable[[Any], Any]) -> None:
        self._dataset = dataset
        self._map_func = map_func
        self._rng = random.Random(42)
        self._fallback = set(range(len(dataset)))

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx: int) -> Any:
        for retry in itertools.count():
            data = self._map_func(self._dataset[idx])
            if data is not None:
                self._fallback.add(idx)
                return data
            self._fallback.discard(idx)
            if not self._fallback:
                raise RuntimeError("The mapper returned None for every item of the dataset")
            if retry >= 3:
                logger.warning("Failed to map item %d after %d retries", idx, retry + 1)
            idx = self._rng.choice(sorted(self._fallback))
        raise AssertionError("unreachable")


def _shard_for_worker(iterable: Iterable, chunk_size: int) -> Iterator:
    """Items of ``iterable`` for this DataLoader worker: chunks of ``chunk_size`` consecutive
    items are dealt to the workers round-robin."""
    info = torchdata.get_worker_info()
    if info is None or info.num_workers == 1:
        yield from iterable
        return
    for position, item in enumerate(iterable):
        if (position // chunk_size) % info.num_workers == info.id:
            yield item


class ToIterableDataset(torchdata.IterableDataset):
    """Iterates ``dataset[i]`` for ``i`` from ``sampler``, each worker taking its own share.

    Args:
        dataset: map-style dataset.
        sampler: index sampler (not worker-aware).
        shard_chunk_size: consecutive indices a worker takes at a time (the batch size keeps
            a batch's images from one worker, like detectron2).
    """

    def __init__(
        self, dataset: torchdata.Dataset, sampler: torchdata.Sampler, shard_chunk_size: int = 1
    ) -> None:
        if isinstance(dataset, torchdata.IterableDataset):
            raise TypeError("ToIterableDataset wraps a map-style dataset, got an IterableDataset")
        self.dataset = dataset
        self.sampler = sampler
        self.shard_chunk_size = shard_chunk_size

    def __iter__(self) -> Iterator:
        for idx in _shard_for_worker(self.sampler, self.shard_chunk_size):
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)


class AspectRatioGroupedDataset(torchdata.IterableDataset):
    """Batches items (dicts with ``width``/``height``) whose aspect ratio is on the same side of
    1 (landscape vs. portrait/square); yields lists of ``batch_size`` dicts."""

    def __init__(self, dataset: Iterable[dict], batch_size: int) -> None:
        self.dataset = dataset
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[dict]]:
        buckets: list[list[dict]] = [[], []]
        for item in self.dataset:
            bucket = buckets[0 if item["width"] > item["height"] else 1]
            bucket.append(item)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]
