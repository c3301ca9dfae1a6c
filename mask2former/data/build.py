"""Data loaders for training (infinite, sharded, batched) and inference (sharded, batches of
one image size)."""

from __future__ import annotations

import itertools
import logging
import operator
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.utils.data as torchdata

from mask2former.data.catalog import DatasetCatalog
from mask2former.data.common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    ToIterableDataset,
)
from mask2former.data.dataset_mappers import TRAIN_MAPPERS, DatasetMapper
from mask2former.data.samplers import (
    InferenceSampler,
    RepeatFactorTrainingSampler,
    SameSizeInferenceBatchSampler,
    TrainingSampler,
)
from mask2former.utils import comm

logger = logging.getLogger(__name__)

__all__ = [
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "build_train_mapper",
    "get_detection_dataset_dicts",
    "trivial_batch_collator",
]

_TRAIN_SAMPLERS = ("TrainingSampler", "RepeatFactorTrainingSampler")


def _has_usable_annotation(record: dict) -> bool:
    return any(obj.get("iscrowd", 0) == 0 for obj in record["annotations"])


def get_detection_dataset_dicts(
    names: str | list[str] | tuple[str, ...], filter_empty: bool = True
) -> list[dict]:
    """Concatenate the records of registered datasets.

    Args:
        names: dataset name(s) registered in :data:`DatasetCatalog`.
        filter_empty: drop records whose ``annotations`` are all crowd or absent (only for
            datasets with ``annotations``; semantic / panoptic records are kept).

    Raises:
        KeyError: a name is not registered (the message lists the registered ones).
        ValueError: a dataset is empty, or nothing is left after filtering.
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("get_detection_dataset_dicts: no dataset names given (DATASETS.TRAIN?)")
    per_dataset = [DatasetCatalog.get(name) for name in names]
    for name, records in zip(names, per_dataset):
        if not records:
            raise ValueError(f"Dataset {name!r} is empty")
    records = list(itertools.chain.from_iterable(per_dataset))
    if filter_empty and "annotations" in records[0]:
        before = len(records)
        records = [r for r in records if _has_usable_annotation(r)]
        logger.info(
            "Removed %d images with no usable annotations. %d images left.",
            before - len(records),
            len(records),
        )
    if not records:
        raise ValueError(f"No valid data found in {', '.join(names)}")
    return records


def trivial_batch_collator(batch: list[Any]) -> list[Any]:
    """Keep a batch as a list (no tensor collation)."""
    return batch


def worker_init_reset_seed(worker_id: int) -> None:
    """Seed numpy / random / torch of a DataLoader worker from its torch seed."""
    seed = (torch.initial_seed() + worker_id) % 2**31
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def build_batch_data_loader(
    dataset: torchdata.Dataset,
    sampler: torchdata.Sampler,
    total_batch_size: int,
    *,
    aspect_ratio_grouping: bool = False,
    num_workers: int = 0,
) -> torchdata.DataLoader | AspectRatioGroupedDataset:
    """Batches of ``total_batch_size // world_size`` mapped records (lists of dicts).

    Raises:
        ValueError: ``total_batch_size`` is not a positive multiple of the world size.
    """
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) must be a positive multiple of the "
            f"number of processes ({world_size})"
        )
    batch_size = total_batch_size // world_size
    logger.info("Making batched data loader with batch_size=%d", batch_size)
    iterable = ToIterableDataset(dataset, sampler, shard_chunk_size=batch_size)
    common = dict(
        num_workers=num_workers,
        worker_init_fn=worker_init_reset_seed,
        prefetch_factor=2 if num_workers > 0 else None,
    )
    if aspect_ratio_grouping:
        # Yield single mapped dicts, then batch them by aspect ratio.
        loader = torchdata.DataLoader(iterable, collate_fn=operator.itemgetter(0), **common)
        return AspectRatioGroupedDataset(loader, batch_size)
    return torchdata.DataLoader(
        iterable,
        batch_size=batch_size,
        drop_last=True,
        collate_fn=trivial_batch_collator,
        **common,
    )


def build_train_mapper(cfg) -> Callable[[dict], dict]:
    """The training mapper named by INPUT.DATASET_MAPPER_NAME.

    Raises:
        KeyError: unknown name; the message names the key and the choices.
    """
    name = cfg.INPUT.DATASET_MAPPER_NAME
    if name not in TRAIN_MAPPERS:
        raise KeyError(
            f"INPUT.DATASET_MAPPER_NAME={name!r} is not a known mapper; choices: "
            f"{', '.join(sorted(TRAIN_MAPPERS))}"
        )
    return TRAIN_MAPPERS[name](cfg, True)


def _build_train_sampler(cfg, records: list[dict]) -> torchdata.Sampler:
    name = cfg.DATALOADER.SAMPLER_TRAIN
    logger.info("Using training sampler %s", name)
    seed = cfg.SEED if cfg.SEED >= 0 else None
    if name == "TrainingSampler":
        return TrainingSampler(len(records), seed=seed)
    if name == "RepeatFactorTrainingSampler":
        factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            records, cfg.DATALOADER.REPEAT_THRESHOLD, sqrt=cfg.DATALOADER.REPEAT_SQRT
        )
        return RepeatFactorTrainingSampler(factors, seed=seed)
    raise ValueError(
        f"DATALOADER.SAMPLER_TRAIN={name!r} is not supported; choices: {', '.join(_TRAIN_SAMPLERS)}"
    )


def build_detection_train_loader(
    cfg,
    mapper: Callable[[dict], Any] | None = None,
    *,
    dataset: list[dict] | None = None,
    sampler: torchdata.Sampler | None = None,
):
    """Infinite training loader yielding lists of SOLVER.IMS_PER_BATCH // world_size dicts.

    Args:
        cfg: reads DATASETS.TRAIN, DATALOADER.*, SOLVER.IMS_PER_BATCH, SEED (and INPUT.* through
            the mapper).
        mapper: defaults to :func:`build_train_mapper`.
        dataset: records to use instead of DATASETS.TRAIN.
        sampler: sampler to use instead of DATALOADER.SAMPLER_TRAIN.
    """
    if dataset is None:
        dataset = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
        )
    if mapper is None:
        mapper = build_train_mapper(cfg)
    if sampler is None:
        sampler = _build_train_sampler(cfg, dataset)
    mapped = MapDataset(DatasetFromList(dataset, copy=False), mapper)
    return build_batch_data_loader(
        mapped,
        sampler,
        cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def build_detection_test_loader(
    cfg,
    dataset_name: str | list[str],
    mapper: Callable[[dict], Any] | None = None,
    *,
    num_workers: int | None = None,
    batch_size: int = 1,
) -> torchdata.DataLoader:
    """Inference loader: every record of ``dataset_name`` exactly once across ranks.

    Args:
        cfg: reads INPUT.* (test mapper) and DATALOADER.NUM_WORKERS.
        dataset_name: registered dataset name(s).
        mapper: defaults to the test :class:`DatasetMapper`.
        num_workers: overrides DATALOADER.NUM_WORKERS.
        batch_size: most images per batch (``TEST.IMS_PER_BATCH`` in evaluation); a batch only
            holds images of one original size (:class:`SameSizeInferenceBatchSampler`).
    """
    records = get_detection_dataset_dicts(dataset_name, filter_empty=False)
    if mapper is None:
        mapper = DatasetMapper(cfg, False)
    dataset = MapDataset(DatasetFromList(records, copy=False), mapper)
    workers = cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers
    sampler = InferenceSampler(len(dataset))
    if batch_size == 1:
        batching: dict[str, Any] = {"batch_size": 1, "sampler": sampler, "drop_last": False}
    else:
        batching = {"batch_sampler": SameSizeInferenceBatchSampler(sampler, records, batch_size)}
    return torchdata.DataLoader(
        dataset, num_workers=workers, collate_fn=trivial_batch_collator, **batching
    )
