"""Files the package needs besides its modules: configs, kernel sources and the scripts.

They live at the repository root (``configs/``, ``csrc/``, ``demo/``, ``tools/``). A wheel
carries copies under ``mask2former/_shipped/`` (put there by setup.py's build step); an
editable install or a source checkout reads the repository's own files.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SHIPPED_DIR = PACKAGE_DIR / "_shipped"
CHECKOUT_DIR = PACKAGE_DIR.parent
# The repository folders that a wheel carries, with the file types taken from each.
SHIPPED_TREES = {
    "configs": ("*.yaml",),
    "csrc": ("*.cpp", "*.h", "*.cu", "*.cuh"),
    "demo": ("*.py",),
    "tools": ("*.py",),
}


def _roots() -> list[Path]:
    roots = [SHIPPED_DIR]
    # Only a checkout of this project, never some other folder beside an installed package.
    if (CHECKOUT_DIR / "pyproject.toml").is_file() and (CHECKOUT_DIR / "mask2former").is_dir():
        roots.append(CHECKOUT_DIR)
    return roots


def shipped_path(relative: str) -> Path | None:
    """The wheel's copy of a repository file or folder, else the checkout's; None if neither.

    Args:
        relative: path from the repository root, e.g. ``"csrc/ms_deform_attn"``.
    """
    for root in _roots():
        candidate = root / relative
        if candidate.exists():
            return candidate
    return None
