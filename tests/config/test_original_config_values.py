"""Every config under configs/ merges to the original's values, key by key
(original_config_values.json, written by record_original_configs.py)."""

import json
from pathlib import Path

import pytest

from mask2former.config import get_cfg
from tests.config.record_original_configs import CONFIG_ROOT, config_paths, flatten

FIXTURE = Path(__file__).resolve().parent / "original_config_values.json"
# Keys the original does not have, with defaults that keep the original's behaviour; each is
# marked "Not in the original" in mask2former/config/defaults.py.
EXTRA_KEYS = {
    # The original hard-codes the deformable encoder's FFN width at 1024.
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD": 1024,
    # Reduced-precision and batched inference, both off by default.
    "TEST.AMP.ENABLED": False,
    "TEST.AMP.DTYPE": "bfloat16",
    "TEST.IMS_PER_BATCH": 1,
    # Pruning of old periodic checkpoints, off by default.
    "SOLVER.CHECKPOINT_MAX_KEEP": 0,
    # Datasets described in the config (docs/custom_datasets.md), none by default.
    "DATASETS.CUSTOM": [],
}


@pytest.fixture(scope="module")
def original():
    return json.loads(FIXTURE.read_text())


def _compare(ours: dict, expected: dict) -> None:
    assert set(ours) - set(expected) == set(EXTRA_KEYS)
    assert set(expected) - set(ours) == set()
    for key, value in EXTRA_KEYS.items():
        assert ours[key] == value, key
    different = {k: (ours[k], v) for k, v in expected.items() if ours[k] != v}
    assert different == {}, "(ours, original) per key"


def test_every_config_was_recorded(original):
    assert sorted(original["configs"]) == config_paths()


def test_defaults_equal_the_original(original):
    _compare(flatten(get_cfg()), original["defaults"])


@pytest.mark.parametrize("path", config_paths())
def test_merged_config_equals_the_original(original, path):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_ROOT / path))
    _compare(flatten(cfg), {**original["defaults"], **original["configs"][path]})
