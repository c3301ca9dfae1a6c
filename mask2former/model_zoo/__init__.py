"""The original's configs, shipped with the package (as detectron2's ``model_zoo``).

``get_config_file("coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml")`` gives the
path of a config under the repository's ``configs/`` (also inside a wheel), and
``get_config(...)`` the loaded config.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mask2former.utils.shipped_files import shipped_path

if TYPE_CHECKING:
    from mask2former.config import CfgNode

__all__ = ["get_config", "get_config_file", "list_configs", "resolve_config_file"]


def list_configs() -> list[str]:
    """Names of the shipped configs, relative to ``configs/`` (sorted)."""
    root = shipped_path("configs")
    if root is None:
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def get_config_file(config_path: str) -> str:
    """Path of a shipped config.

    Args:
        config_path: name relative to ``configs/``, e.g.
            ``"coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"``.

    Raises:
        FileNotFoundError: no shipped config has that name.
    """
    path = shipped_path(f"configs/{config_path}")
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"{config_path!r} is not a shipped config; mask2former.model_zoo.list_configs() "
            "gives the available names (relative to configs/)"
        )
    return str(path)


def get_config(config_path: str) -> CfgNode:
    """The full config (defaults merged with the shipped file ``config_path``)."""
    from mask2former.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(config_path))
    return cfg


def resolve_config_file(filename: str) -> str:
    """``filename`` itself when it exists (or is a URL), else the shipped config of that name.

    Lets ``--config-file coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml`` work
    from any directory. A leading ``configs/`` is accepted too.
    """
    if os.path.exists(filename) or filename.startswith(("http://", "https://")):
        return filename
    name = filename.removeprefix("configs/")
    path = shipped_path(f"configs/{name}")
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"config file {filename!r} does not exist, and no shipped config has that name "
            "(mask2former.model_zoo.list_configs() gives them)"
        )
    return str(path)
