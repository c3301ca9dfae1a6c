"""Index samplers: infinite seeded training streams sharded by rank, and inference shards."""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch.utils.data.sampler import Sampler

from mask2former.utils import comm

logger = logging.getLogger(__name__)

__all__ = ["InferenceSampler", "RepeatFactorTrainingSampler", "TrainingSampler"]


def _resolve_seed(seed: int | None) -> int:
    return int(comm.shared_random_seed() if seed is None or seed < 0 else seed)


class TrainingSampler(Sampler):
    """Infinite stream ``shuffle(range(size)) + shuffle(range(size)) + ...`` sharded by rank.

    Rank ``r`` of ``W`` yields items ``r, r + W, r + 2W, ...`` of the shared stream, so ranks
    never overlap within an epoch and together cover every index.

    Args:
        size: dataset length (> 0).
        shuffle: shuffle each epoch.
        seed: shared seed; None or negative draws one shared by all ranks.
        rank: defaults to the torch.distributed rank (0 without a process group).
        world_size: defaults to the torch.distributed world size (1 without one).
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int | None = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"TrainingSampler(size=) expects a positive int, got {size!r}")
        self._size = size
        self._shuffle = shuffle
        self._seed = _resolve_seed(seed)
        self._rank = comm.get_rank() if rank is None else rank
        self._world_size = comm.get_world_size() if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=generator).tolist()
            else:
                yield from range(self._size)


class RepeatFactorTrainingSampler(Sampler):
    """Like :class:`TrainingSampler`, but image ``i`` appears ``repeat_factors[i]`` times per
    epoch on average (stochastic rounding of the fractional part).

    Args:
        repeat_factors: (N,) float tensor.
        shuffle, seed, rank, world_size: as in :class:`TrainingSampler`.
    """

    def __init__(
        self,
        repeat_factors: torch.Tensor,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self._shuffle = shuffle
        self._seed = _resolve_seed(seed)
        self._rank = comm.get_rank() if rank is None else rank
        self._world_size = comm.get_world_size() if world_size is None else world_size
        repeat_factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: list[dict], repeat_thresh: float, sqrt: bool = True
    ) -> torch.Tensor:
        """Per-image repeat factor from its rarest category (LVIS paper, appendix B.2).

        A category in a fraction ``f`` of images gets ``max(1, t / f)`` (its square root when
        ``sqrt``); an image takes the maximum over its categories (1 without any). Categories
        come from ``annotations`` or, for panoptic records, ``segments_info``.
        """

        def categories(record: dict) -> set[int]:
            items = record.get("annotations", record.get("segments_info", []))
            return {item["category_id"] for item in items}

        category_freq: dict[int, float] = defaultdict(float)
        for record in dataset_dicts:
            for cat_id in categories(record):
                category_freq[cat_id] += 1
        num_images = len(dataset_dicts)
        category_rep = {}
        for cat_id, count in category_freq.items():
            ratio = repeat_thresh / (count / num_images)
            category_rep[cat_id] = max(1.0, math.sqrt(ratio) if sqrt else ratio)
        factors = [
            max((category_rep[c] for c in categories(record)), default=1.0)
            for record in dataset_dicts
        ]
        return torch.tensor(factors, dtype=torch.float32)

    def _epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=generator)
        factors = self._int_part + (rands < self._frac_part).float()
        return torch.repeat_interleave(torch.arange(len(factors)), factors.long())

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            indices = self._epoch_indices(generator)
            if self._shuffle:
                indices = indices[torch.randperm(len(indices), generator=generator)]
            yield from indices.tolist()


class InferenceSampler(Sampler):
    """Contiguous shard of ``range(size)`` for this rank; all ranks together visit every index
    exactly once (shard sizes differ by at most one).

    Args:
        size: dataset length (> 0).
        rank, world_size: default to the torch.distributed values.
    """

    def __init__(self, size: int, *, rank: int | None = None, world_size: int | None = None):
        if size <= 0:
            raise ValueError(f"InferenceSampler(size=) expects a positive int, got {size!r}")
        rank = comm.get_rank() if rank is None else rank
        world_size = comm.get_world_size() if world_size is None else world_size
        self._local_indices = self.local_indices(size, world_size, rank)

    @staticmethod
    def local_indices(total_size: int, world_size: int, rank: int) -> range:
        """Indices of ``rank``'s shard."""
        shard, left = divmod(total_size, world_size)
        sizes = [shard + int(r < left) for r in range(world_size)]
        begin = sum(sizes[:rank])
        return range(begin, min(begin + sizes[rank], total_size))

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)


class SameSizeInferenceBatchSampler(Sampler):
    """Batches of up to ``batch_size`` indices of ``sampler`` whose records share one original
    (height, width), in order of each batch's first index.

    A deterministic test resize maps equal sizes to equal sizes, so no image of a batch is
    padded beyond what it gets alone and batched results equal one-image results (padding
    changes this model's outputs: group norms and deformable attention see it). Records
    without "height"/"width" get a batch of their own.

    Args:
        sampler: yields this rank's dataset indices (e.g. :class:`InferenceSampler`).
        records: the dataset dicts, indexed like the dataset.
        batch_size: most images per batch (>= 1).
    """

    def __init__(self, sampler: Sampler, records: list[dict], batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self._batches = self._group(list(sampler), records, batch_size)

    @staticmethod
    def _group(indices: list[int], records: list[dict], batch_size: int) -> list[list[int]]:
        open_batches: dict[object, list[int]] = {}
        batches: list[list[int]] = []
        for index in indices:
            record = records[index]
            if "height" in record and "width" in record:
                key: object = (record["height"], record["width"])
            else:
                key = ("index", index)
            batch = open_batches.get(key)
            if batch is None:
                batch = open_batches[key] = []
                batches.append(batch)
            batch.append(index)
            if len(batch) == batch_size:
                del open_batches[key]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(batch) for batch in self._batches)

    def __len__(self) -> int:
        return len(self._batches)
