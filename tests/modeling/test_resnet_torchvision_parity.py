"""R50 numerically: torchvision's resnet50 converted by tools/convert-torchvision-to-d2.py and
loaded into our backbone gives torchvision's stage features (frozen and eval-mode BN)."""

import copy
import runpy
import sys
from pathlib import Path

import pytest
import torch

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.config import get_cfg
from mask2former.layers import FrozenBatchNorm2d
from mask2former.modeling.backbone import build_backbone
from tests.optional import require_package

CONVERTER = Path(__file__).resolve().parents[2] / "tools" / "convert-torchvision-to-d2.py"
STAGES = {"res2": "layer1", "res3": "layer2", "res4": "layer3", "res5": "layer4"}


@pytest.fixture(scope="module")
def torchvision_r50(tmp_path_factory):
    """A random-initialised torchvision resnet50 with non-trivial BN statistics converted by
    the tool; its stage features on a float32 image and (smaller) in float64."""
    torchvision = require_package("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
                module.weight.copy_(1 + 0.1 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
    folder = tmp_path_factory.mktemp("r50")
    pth, pkl = folder / "resnet50.pth", folder / "resnet50.pkl"
    torch.save(model.state_dict(), pth)
    argv = sys.argv
    sys.argv = [str(CONVERTER), str(pth), str(pkl)]
    try:
        runpy.run_path(str(CONVERTER), run_name="__main__")
    finally:
        sys.argv = argv
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    # float64 convolutions are slow on CPU: a smaller image.
    small = image[..., :32, :48].double()
    with torch.no_grad():
        expected = _torchvision_stages(model, image)
        expected64 = _torchvision_stages(copy.deepcopy(model).double(), small)
    return {"pkl": pkl, "image": image, "small": small, "expected": expected, "64": expected64}


def _torchvision_stages(model, image: torch.Tensor) -> dict[str, torch.Tensor]:
    x = model.maxpool(model.relu(model.bn1(model.conv1(image))))
    out = {}
    for name, layer in STAGES.items():
        x = getattr(model, layer)(x)
        out[name] = x
    return out


@pytest.mark.parametrize("norm", ["FrozenBN", "BN"])
def test_converted_r50_equals_torchvision(torchvision_r50, norm):
    reference = torchvision_r50
    cfg = get_cfg()
    # As the converter's docstring says for torchvision weights: stride in the 3x3 conv.
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.FREEZE_AT", 0,  # else stem and res2 become FrozenBN anyway
            "MODEL.RESNETS.DEPTH", 50,
            "MODEL.RESNETS.STRIDE_IN_1X1", False,
            "MODEL.RESNETS.NORM", norm,
            "MODEL.RESNETS.OUT_FEATURES", list(STAGES),
        ]
    )  # fmt: skip
    ours = build_backbone(cfg).eval()
    norms = [m for m in ours.modules() if isinstance(m, FrozenBatchNorm2d | torch.nn.BatchNorm2d)]
    assert len(norms) == 53 and all(
        isinstance(m, FrozenBatchNorm2d) == (norm == "FrozenBN") for m in norms
    )
    DetectionCheckpointer(ours).load(str(reference["pkl"]))
    with torch.no_grad():
        got = ours(reference["image"])
    # With autograd on, as when training later stages: FrozenBN's affine path.
    got64 = copy.deepcopy(ours).double()(reference["small"])
    for name in STAGES:
        expected = reference["expected"][name]
        assert got[name].shape == expected.shape, name
        # In float64 rounding is out of the way: any real difference shows at 1e-5.
        torch.testing.assert_close(
            got64[name].detach(), reference["64"][name], rtol=1e-5, atol=1e-5
        )
        # In float32 the features reach ~500 at res5; both sides round alike at 1e-5 of that.
        scale = expected.abs().amax().item()
        assert scale > 1.0, name  # not a trivially small feature map
        torch.testing.assert_close(got[name], expected, rtol=0, atol=1e-5 * scale)
