"""Samplers are deterministic and shard without overlap; loaders batch per rank."""

import itertools

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.data import (
    DatasetCatalog,
    InferenceSampler,
    MetadataCatalog,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from mask2former.data.datasets import register_demo


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_training_sampler_is_deterministic_and_shards_disjointly():
    size = 10
    assert _take(TrainingSampler(size, seed=3), 30) == _take(TrainingSampler(size, seed=3), 30)
    assert _take(TrainingSampler(size, seed=3), 10) != _take(TrainingSampler(size, seed=4), 10)
    shards = [_take(TrainingSampler(size, seed=3, rank=r, world_size=2), 5) for r in range(2)]
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(size))


def test_repeat_factor_sampler_oversamples_rare_categories():
    records = [{"annotations": [{"category_id": 0}]} for _ in range(9)]
    records.append({"annotations": [{"category_id": 1}]})
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
        records, repeat_thresh=0.5, sqrt=False
    )
    assert factors[:9].tolist() == [1.0] * 9 and factors[9].item() == pytest.approx(5.0)
    indices = _take(RepeatFactorTrainingSampler(factors, seed=0), 140)
    assert indices == _take(RepeatFactorTrainingSampler(factors, seed=0), 140)
    assert indices.count(9) == 50  # 10 epochs of 14 indices, 5 of them image 9


@pytest.mark.parametrize("size, world", [(7, 3), (4, 4), (2, 3)])
def test_inference_sampler_visits_every_index_once(size, world):
    seen = [i for r in range(world) for i in InferenceSampler(size, rank=r, world_size=world)]
    assert seen == list(range(size))


@pytest.fixture()
def demo_registered(demo_root):
    register_demo(demo_root, generate=False)
    yield
    for split in ("train", "val"):
        for kind in ("panoptic", "instance", "sem_seg"):
            DatasetCatalog.remove(f"demo_shapes_{split}_{kind}")
            MetadataCatalog.remove(f"demo_shapes_{split}_{kind}")


def _train_cfg():
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("demo_shapes_train_panoptic",)
    cfg.INPUT.DATASET_MAPPER_NAME = "mask_former_panoptic"
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SEED = 5
    return cfg


@pytest.mark.parametrize("grouping", [True, False])
def test_train_loader_is_infinite_and_seeded(demo_registered, grouping):
    cfg = _train_cfg()
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = grouping
    batches = list(itertools.islice(iter(build_detection_train_loader(cfg)), 6))
    assert all(len(b) == 2 and isinstance(b[0]["image"], torch.Tensor) for b in batches)
    again = list(itertools.islice(iter(build_detection_train_loader(cfg)), 6))
    assert [[d["image_id"] for d in b] for b in batches] == [
        [d["image_id"] for d in b] for b in again
    ]
    if grouping:
        for batch in batches:
            assert len({d["width"] > d["height"] for d in batch}) == 1


def test_train_loader_rejects_indivisible_batch(demo_registered, monkeypatch):
    cfg = _train_cfg()
    cfg.SOLVER.IMS_PER_BATCH = 3
    monkeypatch.setattr("mask2former.utils.comm.get_world_size", lambda: 2)
    with pytest.raises(ValueError, match="IMS_PER_BATCH"):
        build_detection_train_loader(cfg)


def test_test_loader_yields_each_image_once(demo_registered):
    cfg = _train_cfg()
    cfg.INPUT.MIN_SIZE_TEST = 64
    ids = [b[0]["image_id"] for b in build_detection_test_loader(cfg, "demo_shapes_val_panoptic")]
    assert ids == [1, 2, 3, 4]


def test_unregistered_dataset_lists_registered(demo_registered):
    with pytest.raises(KeyError, match="demo_shapes_train_panoptic"):
        get_detection_dataset_dicts(["no_such_dataset"])
