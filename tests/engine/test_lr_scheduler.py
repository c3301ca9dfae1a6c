import math

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.engine.lr_scheduler import WarmupPolyLR, build_lr_scheduler


def _optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(scheduler, optimizer, num_iters):
    lrs = []
    for _ in range(num_iters):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _cfg(name, **solver):
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = name
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.WARMUP_ITERS = 10
    cfg.SOLVER.WARMUP_FACTOR = 0.001
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def test_warmup_poly_values():
    opt = _optimizer(2.0)
    sched = build_lr_scheduler(_cfg("WarmupPolyLR", BASE_LR=2.0, POLY_LR_POWER=0.9), opt)
    assert isinstance(sched, WarmupPolyLR)
    lrs = _lrs(sched, opt, 100)
    assert lrs[0] == pytest.approx(2.0 * 0.001)
    alpha = 5 / 10
    assert lrs[5] == pytest.approx(2.0 * (0.001 * (1 - alpha) + alpha) * (1 - 5 / 100) ** 0.9)
    assert lrs[10] == pytest.approx(2.0 * (1 - 10 / 100) ** 0.9)
    assert lrs[99] == pytest.approx(2.0 * (1 - 99 / 100) ** 0.9)


def test_warmup_poly_constant_ending():
    opt = _optimizer()
    sched = WarmupPolyLR(opt, 100, warmup_iters=0, power=1.0, constant_ending=0.05)
    lrs = _lrs(sched, opt, 100)
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[99] == pytest.approx(0.05)  # (1 - 0.99) < 0.05


def test_warmup_multistep_values():
    opt = _optimizer()
    cfg = _cfg("WarmupMultiStepLR", STEPS=(50, 80, 200), GAMMA=0.1)
    lrs = _lrs(build_lr_scheduler(cfg, opt), opt, 100)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[5] == pytest.approx(0.001 + (1 - 0.001) * 0.5)
    assert lrs[10] == pytest.approx(1.0) and lrs[49] == pytest.approx(1.0)
    assert lrs[50] == pytest.approx(0.1) and lrs[79] == pytest.approx(0.1)
    assert lrs[80] == pytest.approx(0.01)


def test_warmup_cosine_values():
    opt = _optimizer()
    lrs = _lrs(build_lr_scheduler(_cfg("WarmupCosineLR"), opt), opt, 100)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[75] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))


def test_scheduler_state_roundtrip():
    opt = _optimizer()
    sched = build_lr_scheduler(_cfg("WarmupPolyLR"), opt)
    _lrs(sched, opt, 7)
    opt2 = _optimizer()
    sched2 = build_lr_scheduler(_cfg("WarmupPolyLR"), opt2)
    sched2.load_state_dict(sched.state_dict())
    assert _lrs(sched2, opt2, 5) == pytest.approx(_lrs(sched, opt, 5))


def test_unknown_scheduler_names_key():
    with pytest.raises(ValueError, match="SOLVER.LR_SCHEDULER_NAME"):
        build_lr_scheduler(_cfg("Nope"), _optimizer())
