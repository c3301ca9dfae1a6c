"""Inference-time folding of batch norms into ``Conv2d`` (layers/wrappers.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mask2former.layers import Conv2d, FrozenBatchNorm2d
from mask2former.modeling.backbone.resnet import build_resnet


def _randomize_norm(norm: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean"):
            tensor = getattr(norm, name)
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.1)


def _conv(norm_class: type[nn.Module], bias: bool = False, groups: int = 1) -> Conv2d:
    generator = torch.Generator().manual_seed(0)
    conv = Conv2d(8, 16, 3, padding=1, bias=bias, groups=groups, norm=norm_class(16))
    _randomize_norm(conv.norm, generator)
    return conv.eval()


@pytest.mark.parametrize("norm_class", [FrozenBatchNorm2d, nn.BatchNorm2d, nn.SyncBatchNorm])
@pytest.mark.parametrize("bias,groups", [(False, 1), (True, 2)])
def test_folded_conv_matches_unfused(norm_class, bias, groups):
    conv = _conv(norm_class, bias=bias, groups=groups)
    x = torch.randn(2, 8, 13, 11)
    unfused = conv(x)  # autograd on: conv then norm, as written
    with torch.no_grad():
        folded = conv(x)
    assert conv._folded is not None
    torch.testing.assert_close(folded, unfused.detach(), rtol=1e-5, atol=1e-5)


def test_training_mode_and_grad_mode_do_not_fold():
    conv = _conv(nn.BatchNorm2d)
    x = torch.randn(2, 8, 5, 5)
    conv.train()
    with torch.no_grad():
        conv(x)
    assert conv._folded is None
    conv.eval()
    out = conv(x.requires_grad_())
    assert conv._folded is None
    out.sum().backward()
    assert conv.norm.weight.grad is not None


def test_eval_forward_leaves_state_dict_unchanged():
    model = build_resnet(depth=18, norm="BN", res2_out_channels=64, out_features=["res3"])
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            _randomize_norm(module, generator)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    after = model.state_dict()
    assert list(after) == list(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name


def test_cache_is_invalidated_by_load_state_dict_and_in_place_edits():
    conv = _conv(FrozenBatchNorm2d)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        conv(x)
        state = {name: tensor.clone() for name, tensor in conv.state_dict().items()}
        state["norm.running_mean"] += 3.0
        state["weight"] *= -2.0
        conv.load_state_dict(state)
        after_load = conv(x)
    torch.testing.assert_close(after_load, conv(x.requires_grad_()).detach(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        conv.norm.bias.add_(1.0)
        after_edit = conv(x)
    torch.testing.assert_close(after_edit, after_load + 1.0, rtol=1e-5, atol=1e-5)


def test_cache_follows_dtype_changes():
    conv = _conv(nn.BatchNorm2d)
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        conv(x.float())
        conv.double()
        folded = conv(x)
    assert folded.dtype == torch.float64
    torch.testing.assert_close(folded, conv(x.requires_grad_()).detach())


def test_non_batch_norm_runs_as_a_module():
    conv = Conv2d(8, 32, 1, norm=nn.GroupNorm(4, 32)).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        out = conv(x)
    assert conv._folded is None
    torch.testing.assert_close(out, conv(x).detach())
