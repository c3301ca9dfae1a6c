"""FLOP (FlopCounterMode) and activation counts against fvcore's default tables."""

import pytest
import torch
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
from torch import nn

from mask2former.modeling import build_model
from mask2former.modeling.analysis import count_activations
from mask2former.modeling.flop_count import count_flops, flop_table
from tests.tiny_config import tiny_cfg


class _EveryCountedOp(nn.Module):
    """One of each operator that fvcore's default table counts and the model uses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.batch_norm = nn.BatchNorm2d(8)
        self.group_norm = nn.GroupNorm(2, 8)
        self.layer_norm = nn.LayerNorm(8)
        self.linear = nn.Linear(8, 6)

    def forward(self, x):
        x = self.group_norm(self.batch_norm(self.conv(x)))
        x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        pooled = nn.functional.adaptive_avg_pool2d(x, 3)
        tokens = self.layer_norm(x.flatten(2).transpose(1, 2))
        scores = torch.einsum("bqc,bkc->bqk", tokens, tokens)
        return self.linear(tokens).sum() + scores.sum() + pooled.sum()


def test_counts_equal_fvcore_operator_by_operator():
    model = _EveryCountedOp().eval()
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        ours = count_flops(model, x)
        fvcore = FlopCountAnalysis(model, (x,))
        fvcore.unsupported_ops_warnings(False)
    theirs = fvcore.by_operator()
    same_operator = {
        "conv": "convolution",
        "batch_norm": "native_batch_norm",
        "group_norm": "native_group_norm",
        "upsample_bilinear2d": "upsample_bilinear2d",
        "upsample_nearest2d": "upsample_nearest2d",
        "adaptive_avg_pool2d": "_adaptive_avg_pool2d",
        "layer_norm": "native_layer_norm",
        "linear": "addmm",
        "einsum": "bmm",
    }
    assert set(theirs) == set(same_operator)
    assert set(ours.by_operator) == set(same_operator.values())
    for name, our_name in same_operator.items():
        # fvcore estimates einsum with numpy's contraction-path count (0.05% above the exact
        # number of multiply-adds here); every other count is exact.
        tolerance = 1e-3 if name == "einsum" else 0
        assert ours.by_operator[our_name] == pytest.approx(theirs[name], rel=tolerance), name
    assert ours.by_module["conv"] == fvcore.by_module()["conv"]
    assert ours.total == pytest.approx(fvcore.total(), rel=1e-3)


def test_model_table_covers_the_pixel_decoder():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    inputs = [{"image": torch.rand(3, 64, 64) * 255, "height": 64, "width": 64}]
    with torch.no_grad():
        counts = count_flops(model, inputs)
    table = flop_table(model, counts, max_depth=2)
    rows = {
        line.split("|")[1].strip(): line.split("|")[3].strip() for line in table.splitlines()[2:]
    }
    # The pixel decoder runs through forward_features: its row sums its submodules.
    assert rows["sem_seg_head.pixel_decoder"] not in ("", "0")
    head = counts.by_module["sem_seg_head"]
    parts = counts.by_module["sem_seg_head.predictor"] + sum(
        v for k, v in counts.by_module.items() if k.count(".") == 2 and ".pixel_decoder." in k
    )
    assert parts == pytest.approx(head, rel=0.05)
    assert counts.total == pytest.approx(counts.by_module[""])


def test_activations_equal_fvcore():
    model = _EveryCountedOp().eval()
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        ours = count_activations(model, x)
        fvcore = ActivationCountAnalysis(model, (x,))
        fvcore.unsupported_ops_warnings(False)
        theirs = fvcore.by_operator()
    assert theirs == {"conv": ours["convolution"], "linear": ours["addmm"], "einsum": ours["bmm"]}
    assert set(ours) == {"convolution", "addmm", "bmm"}
