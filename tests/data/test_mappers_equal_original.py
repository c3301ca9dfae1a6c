"""The five training mappers give the original's outputs on the same records and seeds:
identical images, sem_seg, masks and classes, and the same boxes
(original_mapper_outputs.json, written by record_original_mappers.py)."""

import json
from pathlib import Path

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.data import MetadataCatalog, build_train_mapper
from tests.data.record_original_mappers import (
    DATASET,
    MAPPERS,
    OVERRIDES,
    SEEDS,
    generate_records,
    seed_everything,
    summarize,
)

FIXTURE = Path(__file__).resolve().parent / "original_mapper_outputs.json"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate_records(tmp_path_factory.mktemp("mapper_parity"))


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text())["outputs"]


@pytest.mark.parametrize("name", sorted(MAPPERS))
def test_mapper_equals_the_original(records, recorded, name):
    MetadataCatalog.get(DATASET).set(ignore_label=255)
    cfg = get_cfg()
    cfg.merge_from_list([*OVERRIDES, "INPUT.DATASET_MAPPER_NAME", name])
    mapper = build_train_mapper(cfg)
    kind = MAPPERS[name][2]
    ours = []
    for record in records[kind]:
        for seed in SEEDS:
            seed_everything(seed)
            ours.append(summarize(mapper(record)))
    assert len(ours) == len(recorded[name])
    for index, (got, expected) in enumerate(zip(ours, recorded[name])):
        assert got.keys() == expected.keys(), index
        boxes = got.pop("boxes", None)
        expected = dict(expected)
        expected_boxes = expected.pop("boxes", None)
        assert got == expected, f"record {index // len(SEEDS)}, seed {SEEDS[index % len(SEEDS)]}"
        if expected_boxes is not None:
            torch.testing.assert_close(
                torch.tensor(boxes).view(-1, 4),
                torch.tensor(expected_boxes).view(-1, 4),
                rtol=0,
                atol=0.0,
                msg=f"boxes of output {index}",
            )
