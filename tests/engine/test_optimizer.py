import pytest
import torch
from torch import nn

from mask2former.config import get_cfg
from mask2former.engine.optimizer import build_optimizer, get_param_groups


class _Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(3, 2))


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = _Backbone()
        self.query_feat = nn.Embedding(5, 4)
        self.ln = nn.LayerNorm(4)
        self.head = nn.Linear(4, 5)
        self.tied = nn.Linear(4, 5)
        self.tied.weight = self.head.weight  # shared parameter
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _cfg(**solver):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 0.05
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.01
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.02
    cfg.SOLVER.BACKBONE_MULTIPLIER = 0.1
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


def _hyper_by_param(groups):
    table = {}
    for group in groups:
        for param in group["params"]:
            assert id(param) not in table, "parameter appears twice"
            table[id(param)] = (group["lr"], group["weight_decay"])
    return table


def test_param_groups_follow_original_rules():
    model = _Model()
    groups = get_param_groups(
        model,
        base_lr=1e-3,
        weight_decay=0.05,
        weight_decay_norm=0.01,
        weight_decay_embed=0.02,
        backbone_multiplier=0.1,
    )
    table = _hyper_by_param(groups)
    expected = {
        model.backbone.conv.weight: (1e-4, 0.05),
        model.backbone.norm.weight: (1e-4, 0.01),
        model.backbone.norm.bias: (1e-4, 0.01),
        model.backbone.relative_position_bias_table: (1e-4, 0.0),
        model.query_feat.weight: (1e-3, 0.02),
        model.ln.weight: (1e-3, 0.01),
        model.head.weight: (1e-3, 0.05),
        model.tied.bias: (1e-3, 0.05),
    }
    for param, (lr, decay) in expected.items():
        assert table[id(param)] == pytest.approx((lr, decay))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(table) == trainable  # every trainable parameter once, frozen ones left out


@pytest.mark.parametrize("name, cls", [("ADAMW", torch.optim.AdamW), ("SGD", torch.optim.SGD)])
def test_build_optimizer_type(name, cls):
    opt = build_optimizer(_cfg(OPTIMIZER=name), _Model())
    assert isinstance(opt, cls)
    if name == "SGD":
        assert opt.param_groups[0]["momentum"] == 0.9


def test_unknown_optimizer_names_key():
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(_cfg(OPTIMIZER="LAMB"), _Model())


def _step_with_grads(cfg, scale):
    model = nn.Linear(4, 3)
    opt = build_optimizer(cfg, model)
    for group in opt.param_groups:
        group["lr"] = 0.0  # only inspect what the clipping did to the gradients
    model.weight.grad = torch.full_like(model.weight, scale)
    model.bias.grad = torch.full_like(model.bias, -scale)
    opt.step()
    return model


def test_full_model_clipping_clips_global_norm():
    cfg = _cfg(OPTIMIZER="SGD")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model = _step_with_grads(cfg, 2.0)
    total = torch.cat([model.weight.grad.flatten(), model.bias.grad.flatten()]).norm()
    assert total.item() == pytest.approx(0.5, rel=1e-4)
    # Direction kept: all entries scaled by the same factor.
    assert torch.allclose(model.weight.grad, -model.bias.grad[0].expand_as(model.weight))


def test_value_clipping_clamps_each_entry():
    cfg = _cfg(OPTIMIZER="SGD")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.3
    model = _step_with_grads(cfg, 2.0)
    assert torch.all(model.weight.grad == 0.3) and torch.all(model.bias.grad == -0.3)


def test_norm_clipping_is_per_parameter():
    cfg = _cfg(OPTIMIZER="SGD")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    model = _step_with_grads(cfg, 2.0)
    assert model.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
    assert model.bias.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
