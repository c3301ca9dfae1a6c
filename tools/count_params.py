#!/usr/bin/env python
"""Build Mask2Former configs on the meta device and print their parameter counts.

Usage:
    python tools/count_params.py                      # every YAML under configs/
    python tools/count_params.py CONFIG.yaml [...]    # the given configs

Nothing is allocated: the models are built with ``torch.device("meta")``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mask2former.config import get_cfg
from mask2former.modeling.analysis import build_model_on_meta, parameter_counts

REPO_ROOT = Path(__file__).resolve().parent.parent


def is_model_config(path: Path) -> bool:
    """Whether a YAML names a meta-architecture (the ``Base-*.yaml`` files alone do not)."""
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    return cfg.MODEL.META_ARCHITECTURE == "MaskFormer"


def count_parameters(config_file: str | Path) -> dict[str, int]:
    """Parameter counts of the model a config builds: total, backbone and head.

    Args:
        config_file: path of a YAML config.

    Returns:
        {"total": int, "backbone": int, "sem_seg_head": int}.
    """
    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    counts = parameter_counts(build_model_on_meta(cfg))
    return {
        "total": counts[""],
        "backbone": counts["backbone"],
        "sem_seg_head": counts["sem_seg_head"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="YAML files (default: all under configs/)")
    args = parser.parse_args(argv)
    if args.configs:
        paths = [Path(p) for p in args.configs]
    else:
        paths = [p for p in sorted((REPO_ROOT / "configs").rglob("*.yaml")) if is_model_config(p)]
    print(f"{'config':<90} {'total M':>8} {'backbone M':>11} {'head M':>8}")
    for path in paths:
        counts = count_parameters(path)
        name = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        print(
            f"{str(name):<90} {counts['total'] / 1e6:>8.2f} {counts['backbone'] / 1e6:>11.2f} "
            f"{counts['sem_seg_head'] / 1e6:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
