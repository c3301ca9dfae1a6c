"""The Caffe2 fills the modules take from fvcore.nn.weight_init: with one seed, the same numbers
as the fills drawn by hand (XavierFill: uniform, bound sqrt(3 / fan_in); MSRAFill: normal,
std sqrt(2 / fan_out)), and zero biases."""

import math

import pytest
import torch
from torch import nn

from mask2former.layers import c2_msra_fill, c2_xavier_fill


def _conv() -> nn.Conv2d:
    conv = nn.Conv2d(6, 10, kernel_size=3)  # fan_in 6 * 9 = 54, fan_out 10 * 9 = 90
    nn.init.constant_(conv.bias, 1.0)
    return conv


@pytest.mark.parametrize(
    "fill, draw",
    [
        (c2_xavier_fill, lambda w: w.uniform_(-math.sqrt(3 / 54), math.sqrt(3 / 54))),
        (c2_msra_fill, lambda w: w.normal_(0, math.sqrt(2 / 90))),
    ],
    ids=["xavier", "msra"],
)
def test_seeded_fill_equals_the_caffe2_formula(fill, draw):
    conv = _conv()
    torch.manual_seed(0)
    fill(conv)
    torch.manual_seed(0)
    expected = draw(torch.empty_like(conv.weight))
    torch.testing.assert_close(conv.weight.detach(), expected, rtol=1e-6, atol=0)
    assert torch.count_nonzero(conv.bias) == 0


def test_modules_use_fvcore_fills():
    """No copy of the fills in the package: the modules import fvcore's."""
    import fvcore.nn.weight_init as fvcore_init

    from mask2former.modeling.backbone import resnet_blocks
    from mask2former.modeling.pixel_decoder import fpn, msdeformattn
    from mask2former.modeling.transformer_decoder import mask2former_transformer_decoder

    assert c2_xavier_fill is fvcore_init.c2_xavier_fill
    assert c2_msra_fill is fvcore_init.c2_msra_fill
    assert resnet_blocks.c2_msra_fill is fvcore_init.c2_msra_fill
    for module in (fpn, msdeformattn, mask2former_transformer_decoder):
        assert module.c2_xavier_fill is fvcore_init.c2_xavier_fill
