"""Records the ORIGINAL merged values of every config under configs/ into
original_config_values.json.

"Original" is what the original train_net.py builds: detectron2's ``get_cfg()``
(detectron2/config/defaults.py), then ``add_deeplab_config`` (detectron2's
projects/DeepLab/deeplab/config.py) and ``add_maskformer2_config`` (Mask2Former's
mask2former/config.py), then ``merge_from_file`` of the original's YAML file at the same path.
The three Python files are read from git clones at given commits and executed with fvcore's
``CfgNode`` standing in for detectron2's (which only adds a VERSION check that these files,
having no VERSION, pass as the latest). The fixture stores the defaults once and, per config,
the keys whose merged value differs from them. The recorded commits are in the fixture
("sources"); our defaults follow detectron2 after v0.6 (FLOAT32_PRECISION, SOLVER.NUM_DECAYS,
...), so the recording used detectron2's main branch. Run from the repository root:

    python tests/config/record_original_configs.py --mask2former-git-dir M2F/.git \
        --detectron2-git-dir D2/.git
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path
from typing import Any

from fvcore.common.config import CfgNode

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "original_config_values.json"
CONFIG_ROOT = HERE.parents[1] / "configs"
DEFAULTS_PATH = "detectron2/config/defaults.py"
DEEPLAB_PATH = "projects/DeepLab/deeplab/config.py"
MASKFORMER_PATH = "mask2former/config.py"


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"MODEL.MASK_FORMER.DEC_LAYERS": 10, ...}`` with tuples as lists (JSON's view)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: _as_json(node)}


def _as_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_as_json(v) for v in value]
    return value


def config_paths() -> list[str]:
    """Our configs/ YAML files as relative paths (the demo config is ours alone)."""
    return sorted(
        p.relative_to(CONFIG_ROOT).as_posix()
        for p in CONFIG_ROOT.rglob("*.yaml")
        if p.relative_to(CONFIG_ROOT).parts[0] != "demo"
    )


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, *args], check=True, capture_output=True
    ).stdout


def _exec(git_dir: str, commit: str, path: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    exec(compile(_git(git_dir, "show", f"{commit}:{path}").decode(), path, "exec"), module.__dict__)
    return module


def _original_get_cfg(d2_dir: str, d2_commit: str, m2f_dir: str, m2f_commit: str) -> CfgNode:
    for name in ("detectron2", "detectron2.config", "detectron2.config.config"):
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].CfgNode = CfgNode
    defaults = _exec(d2_dir, d2_commit, DEFAULTS_PATH, "detectron2.config.defaults")
    deeplab = _exec(d2_dir, d2_commit, DEEPLAB_PATH, "deeplab_config")
    maskformer = _exec(m2f_dir, m2f_commit, MASKFORMER_PATH, "mask2former_config")
    cfg = defaults._C.clone()
    deeplab.add_deeplab_config(cfg)
    maskformer.add_maskformer2_config(cfg)
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mask2former-git-dir", required=True)
    parser.add_argument("--mask2former-commit", default="HEAD")
    parser.add_argument("--detectron2-git-dir", required=True)
    parser.add_argument("--detectron2-commit", default="HEAD")
    args = parser.parse_args()
    m2f = _git(args.mask2former_git_dir, "rev-parse", args.mask2former_commit).decode().strip()
    d2 = _git(args.detectron2_git_dir, "rev-parse", f"{args.detectron2_commit}^{{commit}}")
    d2 = d2.decode().strip()
    base = _original_get_cfg(args.detectron2_git_dir, d2, args.mask2former_git_dir, m2f)
    defaults = flatten(base)
    configs = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive = _git(args.mask2former_git_dir, "archive", "--format=tar", m2f, "configs")
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(tmp, filter="data")
        for path in config_paths():
            cfg = base.clone()
            # As detectron2 does: some of the original's files compute lists with a
            # python/object/apply:eval tag.
            cfg.merge_from_file(str(Path(tmp) / "configs" / path), allow_unsafe=True)
            merged = flatten(cfg)
            configs[path] = {k: v for k, v in merged.items() if defaults.get(k, object()) != v}
    fixture = {
        "sources": {
            "detectron2": f"facebookresearch/detectron2 {d2} ({args.detectron2_commit}) "
            f"{DEFAULTS_PATH} {DEEPLAB_PATH}",
            "mask2former": f"facebookresearch/Mask2Former {m2f} {MASKFORMER_PATH} configs/",
        },
        "defaults": defaults,
        "configs": configs,
    }
    OUTPUT.write_text(json.dumps(fixture, indent=0, sort_keys=True) + "\n")
    print(f"wrote {len(configs)} configs to {OUTPUT}")


if __name__ == "__main__":
    main()
