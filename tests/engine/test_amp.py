import pytest
import torch
from engine_toys import ToyModel, toy_cfg, toy_loader

from mask2former.engine.defaults import seed_all_rng
from mask2former.engine.trainer import Trainer


class _AutocastProbe(ToyModel):
    def __init__(self):
        super().__init__()
        self.dtypes = []

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch]).to(self.backbone.weight.device)
        self.dtypes.append(self.backbone(x).dtype)
        batch = [{k: v.to(x.device) for k, v in d.items()} for d in batch]
        return super().forward(batch)


def _train(tmp_path, device):
    seed_all_rng(0)
    cfg = toy_cfg(tmp_path, MAX_ITER=4)
    cfg.SOLVER.AMP.ENABLED = True
    model = _AutocastProbe().to(device)
    trainer = Trainer(cfg, model=model, data_loader=toy_loader(cfg))
    trainer.train()
    return trainer, model


def test_amp_on_cpu_uses_bf16_autocast_without_scaler(tmp_path):
    trainer, model = _train(tmp_path, "cpu")
    assert trainer.grad_scaler is None
    assert model.dtypes == [torch.bfloat16] * 4
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_amp_on_cuda_uses_fp16_and_a_saved_grad_scaler(tmp_path):
    trainer, model = _train(tmp_path, "cuda")
    assert isinstance(trainer.grad_scaler, torch.amp.GradScaler)
    assert model.dtypes == [torch.float16] * 4
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert "grad_scaler" in saved["trainer"]
    assert trainer.storage.history("grad_scaler").latest() > 0
