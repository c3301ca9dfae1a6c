"""The training loader with DATALOADER.NUM_WORKERS 2: each worker and each rank takes its own
share of the sampler's stream, nothing is duplicated or dropped, and a seed fixes both the
order and the workers' random augmentations."""

import itertools
import random

import numpy as np
import pytest
import torch

from mask2former.config import get_cfg
from mask2former.data import TrainingSampler, build_detection_train_loader
from mask2former.data.datasets import register_demo
from mask2former.engine.defaults import seed_all_rng

SIZE = 12  # records
BATCH = 2  # per rank
SEED = 5


def _draw_like_an_augmentation(record: dict) -> dict:
    # What augmentations draw from: numpy, random and torch, in the worker process.
    return {
        "index": record["index"],
        "draws": (np.random.rand(), random.random(), torch.rand(()).item()),
    }


def _cfg(workers: int = 2, world_size: int = 1):
    cfg = get_cfg()
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    cfg.SOLVER.IMS_PER_BATCH = BATCH * world_size
    cfg.SEED = SEED
    return cfg


def _batches(num_batches: int, *, rank: int = 0, world_size: int = 1, workers: int = 2):
    """Mapped batches of a fresh loader seeded as the engine seeds a run."""
    seed_all_rng(SEED)
    sampler = TrainingSampler(SIZE, seed=SEED, rank=rank, world_size=world_size)
    records = [{"index": i} for i in range(SIZE)]
    loader = build_detection_train_loader(
        _cfg(workers, world_size), _draw_like_an_augmentation, dataset=records, sampler=sampler
    )
    return list(itertools.islice(iter(loader), num_batches))


def _indices(batches) -> list[int]:
    return [item["index"] for batch in batches for item in batch]


def test_two_workers_yield_the_sampler_stream_in_order():
    # Three epochs: the two workers' chunks interleave back into the sampler's own order.
    batches = _batches(3 * SIZE // BATCH)
    stream = list(itertools.islice(iter(TrainingSampler(SIZE, seed=SEED)), 3 * SIZE))
    assert _indices(batches) == stream
    for epoch in range(3):
        assert sorted(stream[epoch * SIZE : (epoch + 1) * SIZE]) == list(range(SIZE))
    assert _indices(batches) == _indices(_batches(3 * SIZE // BATCH, workers=0))


def test_two_ranks_with_two_workers_each_cover_every_record_once_per_epoch(monkeypatch):
    monkeypatch.setattr("mask2former.utils.comm.get_world_size", lambda: 2)
    # Two epochs: a rank takes SIZE // 2 records per epoch.
    per_rank = [_indices(_batches(SIZE // BATCH, rank=r, world_size=2)) for r in (0, 1)]
    epoch = SIZE // 2
    for e in range(2):
        shares = [indices[e * epoch : (e + 1) * epoch] for indices in per_rank]
        assert set(shares[0]).isdisjoint(shares[1])
        assert sorted(shares[0] + shares[1]) == list(range(SIZE))


def test_seed_fixes_order_and_worker_randomness():
    first, again = _batches(8), _batches(8)
    assert first == again  # same indices and the same random draws in every worker
    draws = [item["draws"] for batch in first for item in batch]
    assert len(set(draws)) == len(draws)  # the two workers do not repeat each other's draws
    seed_all_rng(SEED + 1)
    sampler = TrainingSampler(SIZE, seed=SEED)
    records = [{"index": i} for i in range(SIZE)]
    other = build_detection_train_loader(
        _cfg(), _draw_like_an_augmentation, dataset=records, sampler=sampler
    )
    reseeded = list(itertools.islice(iter(other), 8))
    assert _indices(reseeded) == _indices(first)  # the order is the sampler's seed ...
    assert reseeded != first  # ... the augmentations follow the run's seed


@pytest.fixture()
def demo_panoptic(demo_root):
    from mask2former.data import DatasetCatalog, MetadataCatalog

    register_demo(demo_root, generate=False)
    yield "demo_shapes_train_panoptic"
    for split in ("train", "val"):
        for kind in ("panoptic", "instance", "sem_seg"):
            DatasetCatalog.remove(f"demo_shapes_{split}_{kind}")
            MetadataCatalog.remove(f"demo_shapes_{split}_{kind}")


def test_real_mapper_in_two_workers_is_reproducible(demo_panoptic):
    cfg = _cfg()
    cfg.DATASETS.TRAIN = (demo_panoptic,)
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_panoptic"
    cfg.INPUT.MIN_SIZE_TRAIN = (48, 64, 80)  # random scale and flip: draws in the workers
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    runs = []
    for _ in range(2):
        seed_all_rng(SEED)
        runs.append(list(itertools.islice(iter(build_detection_train_loader(cfg)), 4)))
    for batch_a, batch_b in zip(*runs):
        for a, b in zip(batch_a, batch_b):
            assert a["image_id"] == b["image_id"]
            assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["instances"].gt_masks, b["instances"].gt_masks)
    sizes = {tuple(d["image"].shape[-2:]) for batch in runs[0] for d in batch}
    assert len(sizes) > 1  # the augmentation did draw different scales
