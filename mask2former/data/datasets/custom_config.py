"""Datasets described in the config (``DATASETS.CUSTOM``), registered by ``train_net.py``.

Each entry of the list is a mapping with ``name``, ``format`` and the format's files::

    DATASETS:
      CUSTOM:
        - {name: shapes_train, format: coco_instances, image_root: data/train,
           json: data/train.json}
        - {name: roads_val, format: sem_seg, image_root: data/val/images,
           gt_root: data/val/labels, classes: [road, car, sky], ignore_label: 255}
      TRAIN: ("shapes_train",)

Paths may use ``~`` and ``$VARS``; relative paths are relative to the working directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from mask2former.config import get_cfg
from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.builtin import register_builtin
from mask2former.data.datasets.custom import (
    register_coco_instances,
    register_coco_panoptic,
    register_sem_seg,
)

logger = logging.getLogger(__name__)

__all__ = ["CUSTOM_FORMATS", "config_with_datasets", "register_custom_datasets"]

_PATH_KEYS = ("image_root", "json", "panoptic_root", "gt_root", "instances_json")


def _coco_instances(entry: dict) -> None:
    register_coco_instances(entry["name"], {}, entry["json"], entry["image_root"])


def _coco_panoptic(entry: dict) -> None:
    register_coco_panoptic(
        entry["name"],
        {},
        entry["image_root"],
        entry["panoptic_root"],
        entry["json"],
        entry.get("instances_json"),
        sem_seg_root=entry.get("gt_root"),
        ignore_label=entry.get("ignore_label", 255),
        image_ext=entry.get("image_ext", ".jpg"),
    )


def _sem_seg(entry: dict) -> None:
    register_sem_seg(
        entry["name"],
        entry["image_root"],
        entry["gt_root"],
        classes=list(entry["classes"]),
        ignore_label=entry.get("ignore_label", 255),
        image_ext=entry.get("image_ext", "jpg"),
        gt_ext=entry.get("gt_ext", "png"),
    )


# format -> (required keys, optional keys, registration)
CUSTOM_FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[dict], None]]] = {
    "coco_instances": (("image_root", "json"), (), _coco_instances),
    "coco_panoptic": (
        ("image_root", "json", "panoptic_root"),
        ("gt_root", "instances_json", "ignore_label", "image_ext"),
        _coco_panoptic,
    ),
    "sem_seg": (
        ("image_root", "gt_root", "classes"),
        ("ignore_label", "image_ext", "gt_ext"),
        _sem_seg,
    ),
}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "format": str,
    "classes": (list, tuple),
    "ignore_label": int,
    "image_ext": str,
    "gt_ext": str,
    **{key: str for key in _PATH_KEYS},
}
# name -> the entry it was registered from (a second setup() in one process is a no-op).
_FROM_CONFIG: dict[str, dict] = {}


def _normalized(entry: Any, where: str) -> dict:
    """Check one entry's keys and types; returns it with resolved paths."""
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where} must be a mapping like {{name: ..., format: ..., ...}}; got {entry!r}"
        )
    entry = dict(entry)
    fmt = entry.get("format")
    if fmt not in CUSTOM_FORMATS:
        raise ValueError(f"{where}.format is {fmt!r}; expected one of {sorted(CUSTOM_FORMATS)}")
    required, optional, _ = CUSTOM_FORMATS[fmt]
    missing = [k for k in ("name", *required) if k not in entry]
    if missing:
        raise ValueError(f"{where} (format {fmt}) lacks {missing}; it has {sorted(entry)}")
    unknown = sorted(set(entry) - {"name", "format", *required, *optional})
    if unknown:
        raise ValueError(
            f"{where} (format {fmt}) has unknown key(s) {unknown}; allowed: "
            f"{['name', 'format', *required, *optional]}"
        )
    for key, value in entry.items():
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            expected = getattr(_TYPES[key], "__name__", "list")
            raise ValueError(
                f"{where}.{key} is {value!r} ({type(value).__name__}); expected a {expected}"
            )
    if not entry["name"]:
        raise ValueError(f"{where}.name is empty")
    if "classes" in entry and not all(isinstance(c, str) for c in entry["classes"]):
        raise ValueError(f"{where}.classes must be a list of class names; got {entry['classes']}")
    for key in _PATH_KEYS:
        if key in entry:
            entry[key] = os.path.abspath(os.path.expandvars(os.path.expanduser(entry[key])))
    return entry


def register_custom_datasets(cfg: Any, *, check_num_classes: bool = True) -> list[str]:
    """Register every dataset of ``cfg.DATASETS.CUSTOM`` (validating its files).

    Args:
        cfg: the config.
        check_num_classes: require ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` to equal the class
            count of the custom datasets in ``DATASETS.TRAIN`` (off for tools without a model).

    Returns:
        The names registered by this call.

    Raises:
        ValueError: an entry is malformed (the message names ``DATASETS.CUSTOM[i].<key>``),
            a name is registered already from a different entry, or a custom dataset of
            ``DATASETS.TRAIN`` has other than ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` classes.
        FileNotFoundError: a file or folder an entry names is missing.
    """
    entries = [_normalized(e, f"DATASETS.CUSTOM[{i}]") for i, e in enumerate(cfg.DATASETS.CUSTOM)]
    names = [e["name"] for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"DATASETS.CUSTOM names {duplicates} more than once")
    registered = []
    for i, entry in enumerate(entries):
        previous = _FROM_CONFIG.get(entry["name"])
        if previous is not None and entry["name"] not in DatasetCatalog:
            previous = None  # removed from the catalog since
        if previous == entry:
            continue
        if previous is not None:
            raise ValueError(
                f"DATASETS.CUSTOM[{i}]: dataset {entry['name']!r} was registered from a "
                f"different entry in this process ({previous}); give it another name"
            )
        try:
            CUSTOM_FORMATS[entry["format"]][2](entry)
        except (ValueError, FileNotFoundError) as e:
            error = FileNotFoundError if isinstance(e, FileNotFoundError) else ValueError
            raise error(f"DATASETS.CUSTOM[{i}] ({entry['name']!r}): {e}") from e
        _FROM_CONFIG[entry["name"]] = entry
        registered.append(entry["name"])
    if check_num_classes:
        _check_num_classes(cfg, names)
    return registered


def _check_num_classes(cfg: Any, custom_names: list[str]) -> None:
    """The model's class count must equal a custom training dataset's (a frequent mistake
    that otherwise fails deep inside the loss, or trains a wrong-sized classifier)."""
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    for name in cfg.DATASETS.TRAIN:
        if name not in custom_names:
            continue
        meta = MetadataCatalog.get(name)
        key = "thing_classes" if meta.evaluator_type == "coco" else "stuff_classes"
        classes = list(meta.get(key) or [])
        if len(classes) != num_classes:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES is {num_classes} but training dataset "
                f"{name!r} has {len(classes)} classes {classes}; set "
                f"MODEL.SEM_SEG_HEAD.NUM_CLASSES {len(classes)}"
            )


def config_with_datasets(config_file: str | None, opts: list[str] | None = None) -> Any:
    """The config of ``config_file`` + ``opts`` (``KEY VALUE`` strings), frozen, with the
    builtin datasets and those of ``DATASETS.CUSTOM`` registered (the tools' set-up)."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    cfg.freeze()
    register_builtin()
    register_custom_datasets(cfg, check_num_classes=False)
    return cfg
