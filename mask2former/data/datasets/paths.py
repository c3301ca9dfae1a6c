"""Dataset root resolution and missing-file errors that say where data is looked for."""

from __future__ import annotations

import os

__all__ = ["ENV_VAR", "default_root", "require_path"]

ENV_VAR = "DETECTRON2_DATASETS"


def default_root() -> str:
    """``$DETECTRON2_DATASETS`` (user-expanded) or ``./datasets``."""
    return os.path.expanduser(os.environ.get(ENV_VAR, "datasets"))


def require_path(path: str, dataset_name: str | None) -> str:
    """Return ``path`` if it exists, else raise an error naming the dataset and the root.

    Raises:
        FileNotFoundError: with the dataset name, the path and the DETECTRON2_DATASETS value.
    """
    if os.path.exists(path):
        return path
    env = os.environ.get(ENV_VAR)
    where = f"${ENV_VAR}={env!r}" if env is not None else f"${ENV_VAR} is unset, so './datasets'"
    raise FileNotFoundError(
        f"Dataset {dataset_name or '(unnamed)'!r}: {path} does not exist. Datasets are read "
        f"from $DETECTRON2_DATASETS ({where}); see datasets/README.md for the expected layout."
    )
