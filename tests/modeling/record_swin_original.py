"""Records the ORIGINAL Swin backbone's outputs (facebookresearch/Mask2Former,
mask2former/modeling/backbone/swin.py) into swin_original_outputs.json.

The original file is read from a git checkout at a given commit and executed with detectron2
and timm stubbed (it only takes ``Backbone``, ``ShapeSpec``, ``BACKBONE_REGISTRY`` and
``DropPath``/``to_2tuple``/``trunc_normal_`` from them; drop path is off and every weight is
overwritten, so the stubs never compute anything). For each setting below, the weights come
from ``fill_weights`` and the input from ``swin_input``, which the test reuses on ours.
Run from the repository root with a clone of the original (``git clone`` or a bare mirror):

    python tests/modeling/record_swin_original.py --git-dir /path/to/Mask2Former/.git
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn

OUTPUT = Path(__file__).resolve().parent / "swin_original_outputs.json"
SWIN_PATH = "mask2former/modeling/backbone/swin.py"
# Tiny widths; input sizes that need padding to the patch and window grids. The second
# setting adds the absolute position embedding (interpolated to the input) and window 5.
SETTINGS = {
    "window7": dict(
        embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7, ape=False,
        pretrain_img_size=224, input_size=(45, 62),
    ),
    "ape_window5": dict(
        embed_dim=8, depths=(1, 2, 1, 1), num_heads=(2, 2, 4, 4), window_size=5, ape=True,
        pretrain_img_size=32, input_size=(38, 50),
    ),
}  # fmt: skip


def fill_weights(model: nn.Module, seed: int = 0) -> None:
    """Overwrite every floating-point state entry, in state-dict order, from one generator."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(0.2 * torch.randn(tensor.shape, generator=generator))


def swin_input(size: tuple[int, int], seed: int = 1) -> torch.Tensor:
    """(1, 3, H, W) standard-normal image."""
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def _stub_modules() -> None:
    registry = types.SimpleNamespace(register=lambda: lambda cls: cls)
    modeling = types.ModuleType("detectron2.modeling")
    modeling.BACKBONE_REGISTRY = registry
    modeling.Backbone = type("Backbone", (nn.Module,), {})
    modeling.ShapeSpec = collections.namedtuple("ShapeSpec", ["channels", "stride"])
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = nn.Identity
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, tuple | list) else (x, x)
    layers.trunc_normal_ = nn.init.trunc_normal_
    for name, module in {
        "detectron2": types.ModuleType("detectron2"),
        "detectron2.modeling": modeling,
        "timm": types.ModuleType("timm"),
        "timm.models": types.ModuleType("timm.models"),
        "timm.models.layers": layers,
    }.items():
        sys.modules[name] = module


def _original_module(git_dir: str, commit: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{SWIN_PATH}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    _stub_modules()
    module = types.ModuleType("original_swin")
    exec(compile(source, SWIN_PATH, "exec"), module.__dict__)
    return module


def _original_cfg(setting: dict) -> types.SimpleNamespace:
    swin = types.SimpleNamespace(
        PRETRAIN_IMG_SIZE=setting["pretrain_img_size"], PATCH_SIZE=4,
        EMBED_DIM=setting["embed_dim"], DEPTHS=list(setting["depths"]),
        NUM_HEADS=list(setting["num_heads"]), WINDOW_SIZE=setting["window_size"],
        MLP_RATIO=4.0, QKV_BIAS=True, QK_SCALE=None, DROP_RATE=0.0, ATTN_DROP_RATE=0.0,
        DROP_PATH_RATE=0.0, APE=setting["ape"], PATCH_NORM=True, USE_CHECKPOINT=False,
        OUT_FEATURES=["res2", "res3", "res4", "res5"],
    )  # fmt: skip
    return types.SimpleNamespace(MODEL=types.SimpleNamespace(SWIN=swin))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--git-dir", required=True, help="git dir of a Mask2Former clone")
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "--git-dir", args.git_dir, "rev-parse", args.commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    original = _original_module(args.git_dir, commit)
    torch.set_num_threads(1)
    recorded = {}
    for name, setting in SETTINGS.items():
        model = original.D2SwinTransformer(_original_cfg(setting), None)
        model.eval()  # (the original's train() returns None: no chaining)
        fill_weights(model)
        with torch.no_grad():
            outputs = model(swin_input(setting["input_size"]))
        recorded[name] = {
            "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "outputs": {
                k: {"shape": list(v.shape), "values": [float(f"{x:.9g}") for x in v.flatten()]}
                for k, v in outputs.items()
            },
        }
    fixture = {
        "source": f"facebookresearch/Mask2Former {commit} {SWIN_PATH}",
        "torch": torch.__version__,
        "settings": recorded,
    }
    OUTPUT.write_text(json.dumps(fixture) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
