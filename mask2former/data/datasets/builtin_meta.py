"""Class tables (JSON data files in ``mask2former/data/class_tables``) and the metadata dicts
built from them, as the original registrations build them."""

from __future__ import annotations

import functools
import json
import os

__all__ = ["load_class_table", "panoptic_metadata", "builtin_metadata"]

_TABLE_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "class_tables")


@functools.cache
def _read_table(name: str) -> str:
    path = os.path.join(_TABLE_DIR, name + ".json")
    if not os.path.isfile(path):
        choices = sorted(f[:-5] for f in os.listdir(_TABLE_DIR) if f.endswith(".json"))
        raise KeyError(f"Class table {name!r} not found in {_TABLE_DIR}; choices: {choices}")
    with open(path) as f:
        return f.read()


def load_class_table(name: str) -> list:
    """A fresh copy of class table ``name`` (e.g. "coco_panoptic_133")."""
    return json.loads(_read_table(name))


def panoptic_metadata(categories: list[dict]) -> dict:
    """Mask2Former's panoptic metadata: contiguous ids follow the table order for all
    classes; ``thing_classes`` lists things only, ``stuff_classes`` every class."""
    things = [c for c in categories if c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [c["color"] for c in things],
        "stuff_classes": [c["name"] for c in categories],
        "stuff_colors": [c["color"] for c in categories],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(categories) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(categories)},
    }


def _coco_instances_meta() -> dict:
    things = [c for c in load_class_table("coco_panoptic_133") if c["isthing"]]
    return {
        "thing_classes": [c["name"] for c in things],
        "thing_colors": [c["color"] for c in things],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
    }


def _coco_panoptic_standard_meta() -> dict:
    """detectron2's "standard" COCO panoptic metadata (things and stuff in separate maps)."""
    cats = load_class_table("coco_panoptic_133")
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_colors": [c["color"] for c in cats],
        "stuff_classes": [c["name"] for c in cats],
        "stuff_colors": [c["color"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(cats) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(cats) if not c["isthing"]
        },
    }


def _cityscapes_meta() -> dict:
    cats = load_class_table("cityscapes_19")
    return {
        "thing_classes": [c["name"] for c in cats if c["isthing"]],
        "stuff_classes": [c["name"] for c in cats],
        "stuff_colors": [c["color"] for c in cats],
    }


def _cityscapes_panoptic_meta() -> dict:
    cats = load_class_table("cityscapes_19")
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_colors": [c["color"] for c in cats],
        "stuff_classes": [c["name"] for c in cats],
        "stuff_colors": [c["color"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: c["trainId"] for c in cats if c["isthing"]},
        "stuff_dataset_id_to_contiguous_id": {
            c["id"]: c["trainId"] for c in cats if not c["isthing"]
        },
    }


def _ade20k_sem_seg_meta() -> dict:
    colors = [c["color"] for c in load_class_table("ade20k_panoptic_150")]
    return {"stuff_classes": load_class_table("ade20k_sem_seg_150_names"), "stuff_colors": colors}


def _ade20k_full_meta() -> dict:
    cats = load_class_table("ade20k_full_847")
    return {
        "stuff_classes": [c["name"] for c in cats],
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def _ade20k_instance_meta() -> dict:
    cats = load_class_table("ade20k_instance_100")
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def _coco_stuff_meta() -> dict:
    cats = load_class_table("coco_stuff_171")
    return {
        "stuff_classes": [c["name"] for c in cats],
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def _mapillary_sem_seg_meta() -> dict:
    cats = [c for c in load_class_table("mapillary_vistas_sem_seg_66") if c["evaluate"]]
    return {
        "stuff_classes": [c["readable"] for c in cats],
        "stuff_colors": [c["color"] for c in cats],
    }


def _mapillary_panoptic_meta() -> dict:
    """As the original: every Vistas class is listed in both thing and stuff lists."""
    cats = load_class_table("mapillary_vistas_panoptic_65")
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_colors": [c["color"] for c in cats],
        "stuff_classes": [c["name"] for c in cats],
        "stuff_colors": [c["color"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {
            c["id"]: i for i, c in enumerate(cats) if c["isthing"]
        },
        "stuff_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


_BUILDERS = {
    "coco": _coco_instances_meta,
    "coco_panoptic_standard": _coco_panoptic_standard_meta,
    "coco_panoptic": lambda: panoptic_metadata(load_class_table("coco_panoptic_133")),
    "cityscapes": _cityscapes_meta,
    "cityscapes_panoptic": _cityscapes_panoptic_meta,
    "ade20k_sem_seg": _ade20k_sem_seg_meta,
    "ade20k_panoptic": lambda: panoptic_metadata(load_class_table("ade20k_panoptic_150")),
    "ade20k_full": _ade20k_full_meta,
    "ade20k_instance": _ade20k_instance_meta,
    "coco_stuff_10k": _coco_stuff_meta,
    "mapillary_vistas_sem_seg": _mapillary_sem_seg_meta,
    "mapillary_vistas_panoptic": _mapillary_panoptic_meta,
}


def builtin_metadata(kind: str) -> dict:
    """Metadata dict of a builtin dataset family (e.g. "coco", "ade20k_panoptic")."""
    if kind not in _BUILDERS:
        raise KeyError(f"No builtin metadata {kind!r}; choices: {sorted(_BUILDERS)}")
    return _BUILDERS[kind]()
