"""Tiny model, data and config shared by the engine tests (not a test module)."""

import numpy as np
import torch
from torch import nn

from mask2former.config import get_cfg
from mask2former.data.build import build_detection_train_loader

NUM_RECORDS = 16


class ToyModel(nn.Module):
    """Regression MLP returning detectron2-style weighted losses; dropout uses torch's RNG."""

    def __init__(self, dropout=0.0, nan_at_call=None):
        super().__init__()
        self.backbone = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8, 2)
        self._calls = 0
        self._nan_at_call = nan_at_call

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch])
        y = torch.stack([d["y"] for d in batch])
        pred = self.head(self.dropout(torch.relu(self.norm(self.backbone(x)))))
        losses = {
            "loss_mse": ((pred - y) ** 2).mean(),
            "loss_l1": 0.1 * (pred - y).abs().mean(),
        }
        if self._calls == self._nan_at_call:
            losses["loss_mse"] = losses["loss_mse"] * float("nan")
        self._calls += 1
        return losses


def records():
    gen = np.random.default_rng(0)
    xs = gen.normal(size=(NUM_RECORDS, 4)).astype(np.float32)
    return [{"x": xs[i], "y": np.stack([xs[i].sum(), xs[i][0] - xs[i][1]])} for i in range(16)]


def noisy_mapper(record):
    """Random augmentation drawn from NumPy's global RNG (like the real mappers)."""
    x = record["x"] + np.random.normal(scale=0.05, size=4).astype(np.float32)
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(record["y"].astype(np.float32))}


def toy_loader(cfg):
    return build_detection_train_loader(cfg, mapper=noisy_mapper, dataset=records())


def toy_cfg(output_dir, **solver):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.SEED = 7
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TEST = ()
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False
    cfg.TEST.EVAL_PERIOD = 0
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLR"
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.MAX_ITER = 6
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.SOLVER.CHECKPOINT_PERIOD = 3
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def sharded_batches(global_batch):
    """Consecutive global batches of the records, this rank's slice of each."""
    from mask2former.utils import comm

    data = [noisy_mapper(r) for r in records()]
    rank, world_size = comm.get_rank(), comm.get_world_size()
    per_rank = global_batch // world_size
    step = 0
    while True:
        start = step * global_batch + rank * per_rank
        yield [data[(start + j) % len(data)] for j in range(per_rank)]
        step += 1


def ddp_worker(output_dir):
    """Train 5 iterations and write (rank 0) the logged losses, final weights and the results
    of a few collectives to ``output_dir``."""
    import json
    import os

    from mask2former.engine.defaults import seed_all_rng
    from mask2former.engine.train_loop import HookBase
    from mask2former.engine.trainer import Trainer
    from mask2former.utils import comm

    class Record(HookBase):
        def after_train(self):
            if comm.is_main_process():
                storage = self.trainer.storage
                losses = {
                    name: [v for v, _ in storage.history(name).values()]
                    for name in ("total_loss", "loss_mse", "loss_l1")
                }
                with open(os.path.join(output_dir, "losses.json"), "w") as f:
                    json.dump(losses, f)

    np.random.seed(0)
    seed_all_rng(7)
    cfg = toy_cfg(output_dir, MAX_ITER=5, CHECKPOINT_PERIOD=0)
    trainer = Trainer(cfg, model=ToyModel(), data_loader=sharded_batches(4))
    trainer.register_hooks([Record()])
    trainer.train()

    rank = comm.get_rank()
    collectives = {
        "all_gather": comm.all_gather(rank),
        "gather": comm.gather({"rank": rank}),
        "reduce_dict": {
            k: float(v) for k, v in comm.reduce_dict({"a": torch.tensor(rank + 1.0)}).items()
        },
        "seeds": comm.all_gather(comm.shared_random_seed()),
        "local_rank": comm.all_gather(comm.get_local_rank()),
    }
    if comm.is_main_process():
        with open(os.path.join(output_dir, "collectives.json"), "w") as f:
            json.dump(collectives, f)
