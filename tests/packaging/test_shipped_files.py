"""What a wheel carries besides the modules: configs (model_zoo), kernel sources, scripts
behind the console commands, LICENSE and py.typed."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

from mask2former import model_zoo
from mask2former.config import get_cfg
from mask2former.layers import _msda_build
from mask2former.utils import shipped_files

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
ISSUE_CONFIG = "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"


def test_model_zoo_lists_every_repository_config():
    names = model_zoo.list_configs()
    on_disk = sorted(
        p.relative_to(REPO_ROOT / "configs").as_posix() for p in REPO_ROOT.glob("configs/**/*.yaml")
    )
    assert names == on_disk and ISSUE_CONFIG in names
    assert (
        Path(model_zoo.get_config_file(ISSUE_CONFIG)).read_bytes()
        == (REPO_ROOT / "configs" / ISSUE_CONFIG).read_bytes()
    )
    cfg = model_zoo.get_config(ISSUE_CONFIG)
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 133 and cfg.MODEL.MASK_FORMER.DEC_LAYERS == 10
    with pytest.raises(FileNotFoundError, match="list_configs"):
        model_zoo.get_config_file("coco/no-such-config.yaml")


def test_config_file_falls_back_to_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    for name in (ISSUE_CONFIG, f"configs/{ISSUE_CONFIG}"):
        cfg = get_cfg()
        cfg.merge_from_file(name)
        assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 133
    # A file of that name wins over the shipped config.
    local = tmp_path / ISSUE_CONFIG
    local.parent.mkdir(parents=True)
    local.write_text("MODEL:\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 7\n")
    cfg = get_cfg()
    cfg.merge_from_file(ISSUE_CONFIG)
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 7
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        get_cfg().merge_from_file("no-such.yaml")


def test_shipped_copy_wins_over_checkout(tmp_path, monkeypatch):
    shipped = tmp_path / "_shipped"
    (shipped / "configs").mkdir(parents=True)
    monkeypatch.setattr(shipped_files, "SHIPPED_DIR", shipped)
    assert shipped_files.shipped_path("configs") == shipped / "configs"
    assert shipped_files.shipped_path("csrc") == REPO_ROOT / "csrc"
    assert shipped_files.shipped_path("no-such-folder") is None


def test_console_commands_point_at_existing_code():
    scripts = PYPROJECT["project"]["scripts"]
    assert {"mask2former-train", "mask2former-demo", "mask2former-analyze"} <= set(scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    source = (REPO_ROOT / "mask2former" / "scripts.py").read_text()
    for relative in ("demo/demo.py", "tools/analyze_model.py", "tools/count_params.py"):
        assert f'"{relative}"' in source and shipped_files.shipped_path(relative) is not None


def test_license_and_py_typed_are_there():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    for name in project["license-files"]:
        assert "MIT License" in (REPO_ROOT / name).read_text()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["mask2former"]
    assert (REPO_ROOT / "mask2former" / "py.typed").is_file()


@pytest.mark.slow
def test_built_package_carries_configs_kernels_and_scripts(tmp_path):
    """setup.py's build step (what a wheel is made of), then the built package alone."""
    build_lib = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build_lib)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    check = (
        "import mask2former.model_zoo as z, mask2former.layers._msda_build as b, "
        "mask2former.utils.shipped_files as s; "
        f"print(z.get_config_file({ISSUE_CONFIG!r})); print(b.SOURCE_DIR); "
        "print(s.shipped_path('demo/demo.py'))"
    )
    env = {**os.environ, "PYTHONPATH": str(build_lib)}
    out = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    shipped = build_lib / "mask2former" / "_shipped"
    assert out == [
        str(shipped / "configs" / ISSUE_CONFIG),
        str(shipped / "csrc" / "ms_deform_attn"),
        str(shipped / "demo" / "demo.py"),
    ]
    for source in _msda_build.source_paths(with_cuda=True):
        relative = source.relative_to(REPO_ROOT)
        assert (shipped / relative).read_bytes() == source.read_bytes()
