import pytest
import torch
from engine_toys import ToyModel, toy_cfg, toy_loader

from mask2former.engine.defaults import seed_all_rng
from mask2former.engine.train_loop import HookBase
from mask2former.engine.trainer import Trainer


class _Kill(HookBase):
    def __init__(self, at_iter):
        self.at_iter = at_iter

    def before_step(self):
        if self.trainer.iter == self.at_iter:
            raise KeyboardInterrupt("simulated kill")


def _new_trainer(output_dir, seed):
    seed_all_rng(seed)
    cfg = toy_cfg(output_dir)
    # Dropout and the mapper's augmentation make the run depend on the RNG states.
    return Trainer(cfg, model=ToyModel(dropout=0.2), data_loader=toy_loader(cfg))


def test_kill_and_resume_reaches_identical_weights(tmp_path):
    full = _new_trainer(tmp_path / "full", seed=7)
    full.resume_or_load(resume=False)
    full.train()

    killed = _new_trainer(tmp_path / "resumed", seed=7)
    killed.register_hooks([_Kill(at_iter=4)])
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert (tmp_path / "resumed" / "last_checkpoint").read_text().strip() == "model_0000002.pth"

    # Another seed and another initialization: everything must come from the checkpoint.
    resumed = _new_trainer(tmp_path / "resumed", seed=123)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3
    resumed.train()

    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for key in full_state:
        assert torch.equal(full_state[key], resumed_state[key]), key
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    full_moments = [s["exp_avg"] for s in full.optimizer.state_dict()["state"].values()]
    resumed_moments = [s["exp_avg"] for s in resumed.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(full_moments, resumed_moments))


def test_resume_without_checkpoint_starts_at_zero(tmp_path):
    trainer = _new_trainer(tmp_path, seed=0)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 0
