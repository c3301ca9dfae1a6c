"""DetectionCheckpointer and the periodic checkpoint hook build on fvcore's Checkpointer and
PeriodicCheckpointer (as detectron2's do); what they add stays: atomic files, a refusal of a
foreign checkpoint before the optimizer takes its state, model_final instead of a last
periodic file."""

import os
from types import SimpleNamespace

import pytest
import torch
from fvcore.common import checkpoint as fvcore_checkpoint
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.checkpoint.file_io import read_checkpoint
from mask2former.engine.hooks import PeriodicCheckpointer


def _checkpointer(save_dir) -> DetectionCheckpointer:
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return DetectionCheckpointer(model, str(save_dir), optimizer=optimizer)


def test_checkpointer_is_fvcores_with_atomic_files(tmp_path):
    checkpointer = _checkpointer(tmp_path)
    assert isinstance(checkpointer, fvcore_checkpoint.Checkpointer)
    checkpointer.save("model_0000004", iteration=4)
    # fvcore's readers see what the atomic writer wrote, and no temporary file is left.
    assert checkpointer.has_checkpoint()
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_0000004.pth")
    assert checkpointer.get_all_checkpoint_files() == [str(tmp_path / "model_0000004.pth")]
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]
    assert checkpointer.resume_or_load("", resume=True) == {"iteration": 4}


def test_foreign_checkpoint_is_refused_before_the_optimizer_loads(tmp_path):
    foreign = nn.Sequential(nn.Linear(3, 2))  # keys "0.weight", "0.bias": none fits
    torch.save({"model": foreign.state_dict(), "optimizer": {"state": {}, "param_groups": []}},
               tmp_path / "foreign.pth")  # fmt: skip
    checkpointer = _checkpointer(tmp_path / "run")
    optimizer_state = checkpointer.checkpointables["optimizer"].state_dict()
    with pytest.raises(ValueError, match="foreign.pth"):
        checkpointer.load(str(tmp_path / "foreign.pth"))
    assert checkpointer.checkpointables["optimizer"].state_dict() == optimizer_state


def _run(hook: PeriodicCheckpointer, iterations, max_iter: int) -> None:
    hook.trainer = SimpleNamespace(iter=0, max_iter=max_iter)
    for iteration in iterations:
        hook.trainer.iter = iteration
        hook.after_step()


def test_hook_is_fvcores_periodic_checkpointer(tmp_path):
    hook = PeriodicCheckpointer(_checkpointer(tmp_path), period=2)
    assert isinstance(hook, fvcore_checkpoint.PeriodicCheckpointer)
    _run(hook, range(6), max_iter=6)
    # Iterations 1 and 3 periodic (fvcore's names); the last one is model_final only.
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == [
        "model_0000001.pth",
        "model_0000003.pth",
        "model_final.pth",
    ]
    saved = read_checkpoint(str(tmp_path / "model_0000003.pth"))
    assert saved["iteration"] == 3 and len(saved["rng_states"]) == 1
    assert read_checkpoint(str(tmp_path / "model_final.pth"))["iteration"] == 5


def test_hook_period_zero_saves_only_the_final_model(tmp_path):
    _run(PeriodicCheckpointer(_checkpointer(tmp_path), period=0), range(4), max_iter=4)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]
