"""Every third-party package that the package or its tools import at module level is a
declared runtime dependency (optional ones are imported inside functions, with an error that
says what to install)."""

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported outside functions (and outside try blocks)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_module_level_imports_are_declared():
    declared = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    distributions = packages_distributions()
    files = [*REPO_ROOT.glob("mask2former/**/*.py"), *REPO_ROOT.glob("tools/*.py")]
    files.append(REPO_ROOT / "demo" / "demo.py")
    undeclared = {}
    for path in files:
        for name in _module_level_imports(path):
            if name in sys.stdlib_module_names or name in ("mask2former", "__future__"):
                continue
            owners = {canonicalize_name(d) for d in distributions.get(name, [name])}
            if not owners & declared:
                undeclared.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    assert not undeclared, f"imported but not in [project.dependencies]: {undeclared}"


def test_no_upper_caps():
    capped = [r for r in PROJECT["dependencies"] if "<" in str(Requirement(r).specifier)]
    assert not capped
