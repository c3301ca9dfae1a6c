"""SOLVER.CHECKPOINT_MAX_KEEP (issue 12, item 2): older periodic checkpoints are deleted, never
``model_final.pth`` nor the one ``last_checkpoint`` names."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.engine.hooks import PeriodicCheckpointer


def _run_hook(save_dir, iterations, *, max_keep: int, max_iter: int = 100):
    checkpointer = DetectionCheckpointer(nn.Linear(2, 2), save_dir=str(save_dir))
    hook = PeriodicCheckpointer(checkpointer, period=1, max_keep=max_keep)
    hook.trainer = SimpleNamespace(iter=0, max_iter=max_iter)
    for iteration in iterations:
        hook.trainer.iter = iteration
        hook.after_step()
    return checkpointer


def _checkpoints(save_dir) -> list[str]:
    return sorted(f for f in os.listdir(save_dir) if f.endswith(".pth"))


def test_only_the_newest_are_kept_and_final_survives(tmp_path):
    _run_hook(tmp_path, range(6), max_keep=2, max_iter=6)
    assert _checkpoints(tmp_path) == ["model_0000003.pth", "model_0000004.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_zero_keeps_everything(tmp_path):
    _run_hook(tmp_path, range(4), max_keep=0)
    assert len(_checkpoints(tmp_path)) == 4


def test_the_file_last_checkpoint_names_is_never_deleted(tmp_path):
    checkpointer = _run_hook(tmp_path, range(3), max_keep=0)
    checkpointer.tag_last_checkpoint("model_0000000.pth")  # e.g. pointed back by hand
    PeriodicCheckpointer(checkpointer, period=1, max_keep=1)._delete_old_checkpoints()
    assert _checkpoints(tmp_path) == ["model_0000000.pth", "model_0000002.pth"]


def test_a_resumed_run_prunes_the_previous_runs_files(tmp_path):
    _run_hook(tmp_path, range(4), max_keep=0)
    _run_hook(tmp_path, [4, 5], max_keep=3)
    assert _checkpoints(tmp_path) == [f"model_{i:07d}.pth" for i in (3, 4, 5)]


@pytest.mark.parametrize("max_keep", [0, 3])
def test_trainer_passes_the_config_key(max_keep):
    from mask2former.engine.trainer import Trainer
    from tests.tiny_config import tiny_cfg

    cfg = tiny_cfg(**{"SOLVER.CHECKPOINT_MAX_KEEP": max_keep})
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    trainer = SimpleNamespace(
        cfg=cfg,
        optimizer=optimizer,
        scheduler=scheduler,
        checkpointer=DetectionCheckpointer(model),  # fvcore's hook reads its path_manager
        model=model,
        build_writers=list,
    )
    hook_list = Trainer.build_hooks(trainer)
    (checkpoint_hook,) = [h for h in hook_list if isinstance(h, PeriodicCheckpointer)]
    assert checkpoint_hook.max_keep == max_keep
