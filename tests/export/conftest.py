"""Models and exported files shared by the export tests (exported once per session)."""

from __future__ import annotations

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.export import export_model
from mask2former.modeling import build_model
from tests.optional import require_package
from tests.tiny_config import REPO_ROOT, tiny_cfg

DEMO_CONFIG = f"{REPO_ROOT}/configs/demo/mask2former_demo.yaml"
TINY_SWIN = {
    "MODEL.BACKBONE.NAME": "D2SwinTransformer",
    "MODEL.SWIN.EMBED_DIM": 16,
    "MODEL.SWIN.DEPTHS": [1, 1, 1, 1],
    "MODEL.SWIN.NUM_HEADS": [1, 1, 2, 2],
    "MODEL.SWIN.WINDOW_SIZE": 4,
}


def build_eval_model(cfg, seed: int = 0) -> torch.nn.Module:
    """``cfg``'s model with random weights, in eval mode, and non-trivial norm statistics."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for module in model.modules():
            # Random BN statistics so that folding and normalisation are really exercised.
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model


def demo_cfg():
    cfg = get_cfg()
    cfg.merge_from_file(DEMO_CONFIG)
    # Random weights score every class low: keep all queries so panoptic results are not empty.
    cfg.MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD = 0.0
    cfg.freeze()
    return cfg


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| (tensors or arrays)."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    return float((actual - expected).abs().max() / expected.abs().max())


@pytest.fixture(scope="session")
def demo_model():
    from mask2former.data import register_builtin

    register_builtin()  # the demo dataset's class names and thing ids
    cfg = demo_cfg()
    return cfg, build_eval_model(cfg)


@pytest.fixture(scope="session")
def demo_onnx(demo_model, tmp_path_factory):
    """The demo model exported to ONNX at 160x224: (cfg, model, path)."""
    require_package("onnx")
    cfg, model = demo_model
    output = tmp_path_factory.mktemp("demo_onnx")
    path = export_model(model, cfg, export_format="onnx", output_dir=output, height=160, width=224)
    return cfg, model, path


@pytest.fixture(scope="session")
def demo_onnx_dynamic(demo_model, tmp_path_factory):
    """The demo model exported to ONNX with dynamic batch, height and width (example 160x224):
    (cfg, model, path)."""
    require_package("onnx")
    cfg, model = demo_model
    output = tmp_path_factory.mktemp("demo_onnx_dynamic")
    path = export_model(
        model, cfg, export_format="onnx", output_dir=output, height=160, width=224, dynamic=True,
        config_file=DEMO_CONFIG,
    )  # fmt: skip
    return cfg, model, path


@pytest.fixture(scope="session")
def tiny_r18_model():
    cfg = tiny_cfg()
    cfg.freeze()
    return cfg, build_eval_model(cfg, seed=1)


@pytest.fixture(scope="session")
def tiny_swin_model():
    cfg = tiny_cfg(**TINY_SWIN)
    cfg.freeze()
    return cfg, build_eval_model(cfg, seed=2)
