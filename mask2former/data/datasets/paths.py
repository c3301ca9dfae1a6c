"""Dataset root resolution, and errors for missing or damaged dataset files that say where
data is looked for and which script makes it."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["ENV_VAR", "default_root", "read_json", "require_path"]

ENV_VAR = "DETECTRON2_DATASETS"
# Path fragment -> the script in datasets/ that creates files under it.
_PREPARATION_SCRIPTS = {
    "panoptic_semseg_": "prepare_coco_semantic_annos_from_panoptic_annos.py",
    "ADEChallengeData2016/annotations_detectron2": "prepare_ade20k_sem_seg.py",
    "ADEChallengeData2016/ade20k_panoptic_": "prepare_ade20k_pan_seg.py",
    "ADEChallengeData2016/ade20k_instance_": "prepare_ade20k_ins_seg.py",
}


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
    scripts = [script for part, script in _PREPARATION_SCRIPTS.items() if part in path]
    made_by = f" It is made by datasets/{scripts[0]}." if scripts else ""
    raise FileNotFoundError(
        f"Dataset {dataset_name or '(unnamed)'!r}: {path} does not exist.{made_by} Datasets are "
        f"read from $DETECTRON2_DATASETS ({where}); see datasets/README.md for the expected "
        "layout."
    )


def read_json(path: str, dataset_name: str | None) -> Any:
    """Parse the JSON file ``path`` of dataset ``dataset_name``.

    Raises:
        FileNotFoundError: as :func:`require_path`.
        ValueError: naming the file and the parser's line and column, if it is not valid JSON
            (often a truncated download).
    """
    require_path(path, dataset_name)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            size = os.path.getsize(path)
            raise ValueError(
                f"Dataset {dataset_name or '(unnamed)'!r}: {path} ({size} bytes) is not valid "
                f"JSON: {e.msg} at line {e.lineno}, column {e.colno}. A truncated file means "
                "an interrupted download or preparation script; make it again."
            ) from e
        except UnicodeDecodeError as e:
            raise ValueError(
                f"Dataset {dataset_name or '(unnamed)'!r}: {path} is not UTF-8 text ({e.reason} "
                f"at byte {e.start}); is it a JSON file?"
            ) from e
