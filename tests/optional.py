"""Optional test dependencies: skip with the reason, or fail when CI should have had them.

A test that needs a package outside the hard dependencies (``transformers``, ``panopticapi``,
...) calls ``require_package``. Without the package it skips and says which package is missing.
CI sets ``MASK2FORMER_TEST_STRICT=1``; then a missing package that CI installs (the project's
dependencies and its ``test`` extra, read from ``pyproject.toml``) fails the test instead, so
the strongest tests cannot vanish from CI unnoticed. A package CI does not install still skips.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on 3.10
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

STRICT_VARIABLE = "MASK2FORMER_TEST_STRICT"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CI_EXTRA = "test"


def strict() -> bool:
    """Whether missing CI dependencies fail instead of skip (``MASK2FORMER_TEST_STRICT=1``)."""
    return os.environ.get(STRICT_VARIABLE, "") == "1"


@functools.cache
def ci_distributions() -> frozenset[str]:
    """Canonical names of the distributions ``pip install -e ".[test]"`` installs directly.

    The hard dependencies plus the ``test`` extra, following extras of this project that the
    ``test`` extra names (``mask2former[eval]``).
    """
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    own_name = canonicalize_name(project["name"])
    names: set[str] = set()
    pending, seen = [*project.get("dependencies", []), *extras[CI_EXTRA]], {CI_EXTRA}
    while pending:
        requirement = Requirement(pending.pop())
        name = canonicalize_name(requirement.name)
        if name != own_name:
            names.add(name)
            continue
        for extra in requirement.extras - seen:
            seen.add(extra)
            pending.extend(extras[extra])
    return frozenset(names)


def unavailable(reason: str, *, ci_has_it: bool) -> NoReturn:
    """Skip with ``reason``; under strict mode fail instead when CI is meant to have it."""
    if ci_has_it and strict():
        pytest.fail(
            f"{reason}; CI is meant to provide it and {STRICT_VARIABLE}=1 turns this skip "
            "into a failure",
            pytrace=False,
        )
    pytest.skip(reason, allow_module_level=True)


def require_package(module: str, distribution: str | None = None) -> ModuleType:
    """Import ``module`` or skip (fail under strict mode) naming the missing package.

    Usable at module level and inside tests, like ``pytest.importorskip``.

    Args:
        module: import name, e.g. ``"panopticapi"``.
        distribution: pip name when it differs from ``module``, e.g. ``"panopticapi-lite"``.
    """
    package = distribution or module
    try:
        return importlib.import_module(module)
    except ImportError as error:
        unavailable(
            f"needs the optional package {package!r} ({error})",
            ci_has_it=canonicalize_name(package) in ci_distributions(),
        )
