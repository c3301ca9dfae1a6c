"""Bad and untrusted weight files (issue 12, items 1 and 4): real files, real errors."""

from __future__ import annotations

import logging
import os
import pickle
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer, UntrustedCheckpointError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


class _TouchesMarker:
    """Unpickling this runs a shell command that creates ``marker`` (what a hostile file does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _hostile_pkl(path, marker) -> None:
    arrays = {k: v.numpy() for k, v in _model().state_dict().items()}
    payload = {"model": arrays, "__author__": "x", "extra": _TouchesMarker(str(marker))}
    path.write_bytes(pickle.dumps(payload, protocol=2))


def test_hostile_pkl_is_refused_without_running_code(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "model_final.pkl"
    _hostile_pkl(path, marker)
    with pytest.raises(UntrustedCheckpointError) as err:
        DetectionCheckpointer(_model()).load(str(path))
    assert not marker.exists()
    message = str(err.value)
    assert str(path) in message and "system" in message
    assert "trusted=True" in message and "MASK2FORMER_TRUST_CHECKPOINTS=1" in message
    # The payload is real: a trusting load runs it.
    DetectionCheckpointer(_model()).load(str(path), trusted=True)
    assert marker.exists()


def test_hostile_pth_is_refused_without_running_code(tmp_path, monkeypatch):
    marker, path = tmp_path / "pwned", tmp_path / "model_final.pth"
    torch.save({"model": _model().state_dict(), "extra": _TouchesMarker(str(marker))}, path)
    with pytest.raises(UntrustedCheckpointError, match="model_final.pth") as err:
        DetectionCheckpointer(_model()).load(str(path))
    assert not marker.exists()
    assert "system" in str(err.value)
    monkeypatch.setenv("MASK2FORMER_TRUST_CHECKPOINTS", "1")
    DetectionCheckpointer(_model()).load(str(path))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_model_zoo_pkl_of_arrays_and_tensors_loads(tmp_path, protocol):
    state = _model().state_dict()
    payload = {
        "model": {k: (v.numpy() if "weight" in k else v) for k, v in state.items()},
        "__author__": "zoo",
        "step": np.int64(3),
        "shapes": {k: tuple(v.shape) for k, v in state.items()},
    }
    path = tmp_path / "zoo.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    fresh = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    extra = DetectionCheckpointer(fresh).load(str(path))
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in state)
    assert extra["step"] == 3


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_truncated_or_corrupt_file_names_it(tmp_path, suffix, damage):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save({"model": _model().state_dict()}, path)
    else:
        arrays = {k: v.numpy() for k, v in _model().state_dict().items()}
        path.write_bytes(pickle.dumps({"model": arrays, "__author__": "x"}))
    content = path.read_bytes()
    damaged = {
        "truncated": content[: len(content) // 2],
        "empty": b"",
        "garbage": bytes(range(256)) * 4,
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(ValueError) as err:
        DetectionCheckpointer(_model()).load(str(path))
    assert not isinstance(err.value, UntrustedCheckpointError)
    message = str(err.value)
    assert str(path) in message and "truncated or corrupt" in message
    assert f"({len(damaged)} bytes)" in message


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_model.pth"):
        DetectionCheckpointer(_model()).load(str(tmp_path / "no_such_model.pth"))


def test_a_directory_as_weights_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"Checkpoint file {tmp_path} is a directory"):
        DetectionCheckpointer(_model()).load(str(tmp_path))


def test_checkpoint_of_another_architecture_is_an_error(tmp_path):
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    torch.save({"model": other.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(ValueError) as err:
        DetectionCheckpointer(_model()).load(str(tmp_path / "other.pth"))
    message = str(err.value)
    assert "No tensor of" in message and "other.pth" in message
    assert "another architecture" in message and "0.weight" in message


def test_same_names_other_shapes_is_an_error_with_a_table(tmp_path):
    wider = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 7))
    torch.save(wider.state_dict(), tmp_path / "wider.pth")
    with pytest.raises(ValueError) as err:
        DetectionCheckpointer(_model()).load(str(tmp_path / "wider.pth"))
    message = str(err.value)
    assert "names matched with other shapes" in message
    assert "key" in message and "checkpoint" in message
    assert "0.weight" in message and "(5, 4)" in message and "(3, 4)" in message


def test_partial_shape_mismatch_logs_one_summary_table(tmp_path, caplog):
    state = _model().state_dict()
    state["1.weight"] = torch.zeros(7, 3)
    state["1.bias"] = torch.zeros(7)
    torch.save({"model": state}, tmp_path / "head_changed.pth")
    with caplog.at_level(logging.WARNING, logger="mask2former.checkpoint"):
        DetectionCheckpointer(_model()).load(str(tmp_path / "head_changed.pth"))
    summaries = [r.getMessage() for r in caplog.records if "Skipped 2 tensors" in r.getMessage()]
    assert len(summaries) == 1
    table = summaries[0]
    assert "key" in table and "checkpoint" in table and "model" in table
    assert "1.weight" in table and "(7, 3)" in table and "(2, 3)" in table
