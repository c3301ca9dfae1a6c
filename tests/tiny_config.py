"""A tiny Mask2Former config for fast CPU tests (R18, 32-channel heads, 10 queries, 5 classes).

Usage from any test::

    from tests.tiny_config import tiny_cfg
    cfg = tiny_cfg(**{"MODEL.MASK_FORMER.TEST.INSTANCE_ON": False})

The model predicts the 5 classes of the demo "shapes" dataset (3 things, 2 stuff). Its metadata
is set under :data:`TINY_DATASET` (metadata only, nothing in ``DatasetCatalog``), so panoptic
inference knows the thing ids and visualisers find class names and colours.
"""

from __future__ import annotations

import os
from typing import Any

from mask2former.config import get_cfg
from mask2former.data.catalog import MetadataCatalog
from mask2former.data.datasets.demo import demo_metadata

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_CONFIG = os.path.join(
    REPO_ROOT, "configs", "coco", "panoptic-segmentation", "maskformer2_R50_bs16_50ep.yaml"
)
TINY_DATASET = "tiny_cfg_shapes"
# The CLIs call ``register_builtin()``, which registers the demo dataset under these names.
CLI_TRAIN_DATASET = "demo_shapes_train_panoptic"
CLI_TEST_DATASET = "demo_shapes_val_panoptic"

_TINY_OPTS: dict[str, Any] = {
    "MODEL.WEIGHTS": "",
    "MODEL.DEVICE": "cpu",
    "MODEL.RESNETS.DEPTH": 18,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 5,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 32,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 32,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 1,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 32,
    "MODEL.MASK_FORMER.NHEADS": 4,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 64,
    "MODEL.MASK_FORMER.DEC_LAYERS": 2,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 10,
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 64,
    "INPUT.MIN_SIZE_TEST": 64,
    "INPUT.MAX_SIZE_TEST": 128,
    "DATALOADER.NUM_WORKERS": 0,
    "TEST.DETECTIONS_PER_IMAGE": 10,
}


def ensure_tiny_metadata() -> None:
    """Set the demo classes' metadata under :data:`TINY_DATASET` (idempotent)."""
    MetadataCatalog.get(TINY_DATASET).set(ignore_label=255, label_divisor=1000, **demo_metadata())


def tiny_opts(**overrides: Any) -> list[str]:
    """The tiny config as ``KEY VALUE ...`` strings for the CLIs' trailing overrides.

    The datasets are the demo dataset's, which the CLIs register (metadata only until loaded).
    """
    opts = dict(
        _TINY_OPTS,
        **{"DATASETS.TRAIN": (CLI_TRAIN_DATASET,), "DATASETS.TEST": (CLI_TEST_DATASET,)},
    )
    opts.update(overrides)
    flat: list[str] = []
    for key, value in opts.items():
        flat += [key, repr(value) if isinstance(value, str | tuple | list) else str(value)]
    return flat


def tiny_cfg(**overrides: Any):
    """A tiny (unfrozen) config; ``overrides`` maps full keys ("MODEL.DEVICE") to values."""
    ensure_tiny_metadata()
    cfg = get_cfg()
    cfg.merge_from_file(BASE_CONFIG)
    opts = dict(_TINY_OPTS, **{"DATASETS.TRAIN": (TINY_DATASET,), "DATASETS.TEST": (TINY_DATASET,)})
    opts.update(overrides)
    for key, value in opts.items():
        node = cfg
        *parents, leaf = key.split(".")
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise KeyError(f"tiny_cfg: unknown config key {key!r}")
        node[leaf] = value
    return cfg
