import json
import logging
import os

import pytest
import torch
from engine_toys import ToyModel, toy_cfg, toy_loader

from mask2former.engine.defaults import seed_all_rng
from mask2former.engine.hooks import EvalHook
from mask2former.engine.train_loop import HookBase, TrainerBase
from mask2former.engine.trainer import Trainer


class _Snapshot(HookBase):
    def __init__(self):
        self.weights = {}

    def after_step(self):
        model = self.trainer.model
        self.weights[self.trainer.iter] = {k: v.clone() for k, v in model.state_dict().items()}


def test_nan_guard_stops_before_the_update(tmp_path):
    seed_all_rng(0)
    cfg = toy_cfg(tmp_path)
    trainer = Trainer(cfg, model=ToyModel(nan_at_call=2), data_loader=toy_loader(cfg))
    snapshot = _Snapshot()
    trainer.register_hooks([snapshot])
    with pytest.raises(FloatingPointError, match=r"iteration=2 .*loss_mse=nan"):
        trainer.train()
    assert trainer.iter == 2
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, snapshot.weights[1][key]), key
    assert not os.path.exists(tmp_path / "model_final.pth")


def test_training_writes_metrics_tensorboard_and_checkpoints(tmp_path, caplog):
    seed_all_rng(0)
    cfg = toy_cfg(tmp_path)
    trainer = Trainer(cfg, model=ToyModel(), data_loader=toy_loader(cfg))
    with caplog.at_level(logging.INFO, logger="mask2former"):
        trainer.train()
    lines = [json.loads(line) for line in open(tmp_path / "metrics.json")]
    last = lines[-1]
    assert last["iteration"] == 5
    for key in ("total_loss", "loss_mse", "loss_l1", "lr", "time", "data_time"):
        assert key in last, key
    assert last["total_loss"] == pytest.approx(last["loss_mse"] + last["loss_l1"], rel=1e-6)
    assert last["lr"] == pytest.approx(0.01 * (1 - 5 / 6) ** 0.9)  # base LR group, not backbone
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
    for name in ("model_0000002.pth", "model_final.pth", "last_checkpoint"):
        assert (tmp_path / name).exists(), name
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_final.pth"
    console = [r.getMessage() for r in caplog.records if "iter: 5/6" in r.getMessage()]
    assert console and all(s in console[0] for s in ("eta:", "total_loss", "lr:", "data_time"))


class _Noop(TrainerBase):
    def run_step(self):
        pass


def test_eval_hook_period_final_and_rng_isolation():
    calls = []

    def eval_fn():
        calls.append(torch.rand(1))  # consumes random numbers
        return {"sem_seg": {"mIoU": float(len(calls)), "IoU-x": float("nan")}}

    trainer = _Noop()
    trainer.register_hooks([EvalHook(4, eval_fn)])
    torch.manual_seed(0)
    trainer.train(0, 10)
    expected_rng = torch.manual_seed(0).get_state()
    assert len(calls) == 3  # after iterations 3, 7 and after training
    history = trainer.storage.history("sem_seg/mIoU").values()
    assert [it for _, it in history] == [3, 7, 10]
    assert torch.equal(torch.get_rng_state(), expected_rng)
