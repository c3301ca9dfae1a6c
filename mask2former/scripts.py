"""Console commands (``[project.scripts]`` in pyproject.toml) that run the repository's
scripts (``demo/demo.py``, ``tools/*.py``) from a wheel's copies or from the checkout, so that
``mask2former-demo ARGS`` equals ``python demo/demo.py ARGS``."""

from __future__ import annotations

import runpy

from mask2former.utils.shipped_files import shipped_path


def _run_script(relative: str) -> None:
    path = shipped_path(relative)
    if path is None:
        raise SystemExit(
            f"{relative} is neither in this installation (mask2former/_shipped) nor in a "
            "source checkout; reinstall the package"
        )
    runpy.run_path(str(path), run_name="__main__")


def demo() -> None:
    """``mask2former-demo``: ``demo/demo.py`` (images, video, webcam)."""
    _run_script("demo/demo.py")


def analyze_model() -> None:
    """``mask2former-analyze``: ``tools/analyze_model.py`` (FLOPs, parameters, activations)."""
    _run_script("tools/analyze_model.py")


def count_params() -> None:
    """``mask2former-count-params``: ``tools/count_params.py``."""
    _run_script("tools/count_params.py")


def convert_checkpoint() -> None:
    """``mask2former-convert-checkpoint``: ``tools/convert_checkpoint.py``."""
    _run_script("tools/convert_checkpoint.py")


def evaluate_pq_for_semantic_segmentation() -> None:
    """``mask2former-evaluate-semseg-pq``: ``tools/evaluate_pq_for_semantic_segmentation.py``."""
    _run_script("tools/evaluate_pq_for_semantic_segmentation.py")
