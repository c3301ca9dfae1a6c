"""Registration of the builtin datasets under a root (``$DETECTRON2_DATASETS`` or ./datasets).

Names, paths and metadata follow detectron2's and the original Mask2Former's registrations.
The catalogs call :func:`sync_builtin` before every lookup, so the builtin names are known
without a call; registration reads only the class tables shipped with the package (about
10 ms), never a dataset file. Without an explicit root, the root follows
``$DETECTRON2_DATASETS`` as it is when a dataset or its metadata is looked up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.builtin_meta import builtin_metadata
from mask2former.data.datasets.cityscapes import (
    load_cityscapes_instances,
    load_cityscapes_panoptic,
    load_cityscapes_semantic,
)
from mask2former.data.datasets.custom import (
    register_coco_instances,
    register_coco_panoptic,
    register_sem_seg,
)
from mask2former.data.datasets.demo import register_demo
from mask2former.data.datasets.paths import default_root

logger = logging.getLogger(__name__)

__all__ = ["register_builtin", "release_builtin", "sync_builtin"]

_COCO_INSTANCES = {
    "coco_2014_train": ("coco/train2014", "coco/annotations/instances_train2014.json"),
    "coco_2014_val": ("coco/val2014", "coco/annotations/instances_val2014.json"),
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
}
# name -> (panoptic root, panoptic json, semantic root of the "_with_sem_seg" variant)
_COCO_PANOPTIC = {
    "coco_2017_train_panoptic": (
        "coco/panoptic_train2017",
        "coco/annotations/panoptic_train2017.json",
        "coco/panoptic_semseg_train2017",
    ),
    "coco_2017_val_panoptic": (
        "coco/panoptic_val2017",
        "coco/annotations/panoptic_val2017.json",
        "coco/panoptic_semseg_val2017",
    ),
}
_ADE = "ADEChallengeData2016"


def _register_coco(root: str) -> None:
    for name, (image_root, json_file) in _COCO_INSTANCES.items():
        register_coco_instances(
            name,
            builtin_metadata("coco"),
            os.path.join(root, json_file),
            os.path.join(root, image_root),
            validate=False,
        )
    for name, (pan_root, pan_json, semseg_root) in _COCO_PANOPTIC.items():
        instances = name[: -len("_panoptic")]
        image_root = os.path.join(root, _COCO_INSTANCES[instances][0])
        instances_json = os.path.join(root, _COCO_INSTANCES[instances][1])
        # Mask2Former keeps detectron2's standard panoptic registration but lists only the
        # things in thing_classes; "_with_sem_seg" adds the panoptic-derived semantic maps.
        standard = builtin_metadata("coco_panoptic_standard")
        panoptic = builtin_metadata("coco_panoptic")
        standard.update(
            thing_classes=panoptic["thing_classes"], thing_colors=panoptic["thing_colors"]
        )
        common = dict(
            image_root=image_root,
            panoptic_root=os.path.join(root, pan_root),
            panoptic_json=os.path.join(root, pan_json),
            instances_json=instances_json,
            validate=False,
        )
        register_coco_panoptic(name, standard, **common)
        register_coco_panoptic(
            name + "_with_sem_seg", panoptic, sem_seg_root=os.path.join(root, semseg_root), **common
        )
    stuff_root = os.path.join(root, "coco", "coco_stuff_10k")
    for split in ("train", "test"):
        _register_sem_seg(
            f"coco_2017_{split}_stuff_10k_sem_seg",
            os.path.join(stuff_root, "images_detectron2", split),
            os.path.join(stuff_root, "annotations_detectron2", split),
            builtin_metadata("coco_stuff_10k"),
        )


def _register_sem_seg(
    name: str,
    image_dir: str,
    gt_dir: str,
    meta: dict,
    *,
    gt_ext: str = "png",
    ignore_label: int = 255,
) -> None:
    register_sem_seg(
        name,
        image_dir,
        gt_dir,
        classes=meta["stuff_classes"],
        ignore_label=ignore_label,
        image_ext="jpg",
        gt_ext=gt_ext,
        metadata=meta,
        validate=False,
    )


def _register_ade20k(root: str) -> None:
    ade = os.path.join(root, _ADE)
    full = os.path.join(root, "ADE20K_2021_17_01")
    panoptic_meta = builtin_metadata("ade20k_panoptic")
    for split, dirname in (("train", "training"), ("val", "validation")):
        image_dir = os.path.join(ade, "images", dirname)
        semseg_dir = os.path.join(ade, "annotations_detectron2", dirname)
        _register_sem_seg(
            f"ade20k_sem_seg_{split}", image_dir, semseg_dir, builtin_metadata("ade20k_sem_seg")
        )
        # The 847-class labels are 16-bit TIFFs with 65535 as ignore.
        _register_sem_seg(
            f"ade20k_full_sem_seg_{split}",
            os.path.join(full, "images_detectron2", dirname),
            os.path.join(full, "annotations_detectron2", dirname),
            builtin_metadata("ade20k_full"),
            gt_ext="tif",
            ignore_label=65535,
        )
        register_coco_panoptic(
            f"ade20k_panoptic_{split}",
            panoptic_meta,
            image_dir,
            os.path.join(ade, f"ade20k_panoptic_{split}"),
            os.path.join(ade, f"ade20k_panoptic_{split}.json"),
            sem_seg_root=semseg_dir,
            instances_json=os.path.join(ade, f"ade20k_instance_{split}.json"),
            evaluator_type="ade20k_panoptic_seg",
            validate=False,
        )
        register_coco_instances(
            f"ade20k_instance_{split}",
            builtin_metadata("ade20k_instance"),
            os.path.join(ade, f"ade20k_instance_{split}.json"),
            image_dir,
            validate=False,
        )


def _register_cityscapes(root: str) -> None:
    meta = builtin_metadata("cityscapes")
    panoptic_meta = builtin_metadata("cityscapes_panoptic")
    for split in ("train", "val", "test"):
        image_dir = os.path.join(root, "cityscapes", "leftImg8bit", split)
        gt_dir = os.path.join(root, "cityscapes", "gtFine", split)
        name = f"cityscapes_fine_instance_seg_{split}"
        DatasetCatalog.register(
            name, lambda x=image_dir, y=gt_dir, n=name: load_cityscapes_instances(x, y, n)
        )
        MetadataCatalog.get(name).set(
            image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_instance", **meta
        )
        name = f"cityscapes_fine_sem_seg_{split}"
        DatasetCatalog.register(
            name, lambda x=image_dir, y=gt_dir, n=name: load_cityscapes_semantic(x, y, n)
        )
        MetadataCatalog.get(name).set(
            image_dir=image_dir,
            gt_dir=gt_dir,
            evaluator_type="cityscapes_sem_seg",
            ignore_label=255,
            **meta,
        )
    for split in ("train", "val"):
        name = f"cityscapes_fine_panoptic_{split}"
        image_dir = os.path.join(root, "cityscapes", "leftImg8bit", split)
        pan_dir = os.path.join(root, "cityscapes", "gtFine", f"cityscapes_panoptic_{split}")
        pan_json = pan_dir + ".json"
        DatasetCatalog.register(
            name,
            lambda x=image_dir, y=pan_dir, z=pan_json, n=name: load_cityscapes_panoptic(
                x, y, z, panoptic_meta, n
            ),
        )
        MetadataCatalog.get(name).set(
            panoptic_root=pan_dir,
            image_root=image_dir,
            panoptic_json=pan_json,
            gt_dir=os.path.join(root, "cityscapes", "gtFine", split),
            evaluator_type="cityscapes_panoptic_seg",
            ignore_label=255,
            label_divisor=1000,
            **panoptic_meta,
        )


def _register_mapillary(root: str) -> None:
    vistas = os.path.join(root, "mapillary_vistas")
    panoptic_meta = builtin_metadata("mapillary_vistas_panoptic")
    for split, dirname in (("train", "training"), ("val", "validation")):
        image_dir = os.path.join(vistas, dirname, "images")
        labels_dir = os.path.join(vistas, dirname, "labels")
        _register_sem_seg(
            f"mapillary_vistas_sem_seg_{split}",
            image_dir,
            labels_dir,
            builtin_metadata("mapillary_vistas_sem_seg"),
            ignore_label=65,
        )
        register_coco_panoptic(
            f"mapillary_vistas_panoptic_{split}",
            panoptic_meta,
            image_dir,
            os.path.join(vistas, dirname, "panoptic"),
            os.path.join(vistas, dirname, "panoptic", "panoptic_2018.json"),
            sem_seg_root=labels_dir,
            evaluator_type="mapillary_vistas_panoptic_seg",
            ignore_label=65,
            validate=False,
        )


# "explicit": the root given to register_builtin; "root": the root the builtins are registered
# under now. A dict so that tests can swap the whole state.
_REGISTERED_ROOTS: dict[str, str] = {}
_BUILTIN_NAMES: set[str] = set()


class _BuiltinLoader:
    """A builtin dataset's loader, marked so that a user's registration can replace it."""

    def __init__(self, func: Callable[[], list[dict]]) -> None:
        self.func = func

    def __call__(self) -> list[dict]:
        return self.func()


_SYNCING: list[bool] = []  # non-empty while registering (the catalogs call back into sync)


def _register_all(root: str) -> None:
    _register_coco(root)
    _register_ade20k(root)
    _register_cityscapes(root)
    _register_mapillary(root)
    register_demo(os.path.join(root, "demo_shapes"))


def _current_root() -> str:
    explicit = _REGISTERED_ROOTS.get("explicit")
    return explicit if explicit is not None else os.path.abspath(default_root())


def sync_builtin() -> None:
    """Register the builtin datasets under the current root (an explicit
    :func:`register_builtin` root, else ``$DETECTRON2_DATASETS``), again when that root
    changed or a builtin name was removed. Names the user registered are left alone.

    Called by the catalogs before each lookup; cheap when nothing changed.
    """
    if _SYNCING:
        return
    root = _current_root()
    datasets, metadata = DatasetCatalog.data, MetadataCatalog.data
    if _REGISTERED_ROOTS.get("root") == root and _BUILTIN_NAMES <= datasets.keys():
        return
    _SYNCING.append(True)
    try:
        # Register into empty catalogs, then copy over every name the user does not own.
        DatasetCatalog.data, MetadataCatalog.data = {}, {}
        try:
            _register_all(root)
        finally:
            new_datasets, new_metadata = DatasetCatalog.data, MetadataCatalog.data
            DatasetCatalog.data, MetadataCatalog.data = datasets, metadata
        for name, loader in new_datasets.items():
            if name in datasets and not isinstance(datasets[name], _BuiltinLoader):
                continue  # registered by the user
            datasets[name], metadata[name] = _BuiltinLoader(loader), new_metadata[name]
            _BUILTIN_NAMES.add(name)
        _REGISTERED_ROOTS["root"] = root
    finally:
        _SYNCING.clear()
    logger.info("Builtin datasets registered under %s", root)


def release_builtin(name: str) -> bool:
    """Drop the builtin registration of ``name`` so that the user can register their own.

    Returns:
        False when ``name`` is not (or no longer) the builtin registration.
    """
    if not isinstance(DatasetCatalog.data.get(name), _BuiltinLoader):
        return False
    del DatasetCatalog.data[name]
    MetadataCatalog.data.pop(name, None)
    logger.info("Dataset %r replaces the builtin dataset of that name", name)
    return True


def register_builtin(root: str | None = None) -> None:
    """Pin the builtin datasets (and the demo dataset) to ``root``.

    The builtins are registered without this call; use it to give a root other than
    ``$DETECTRON2_DATASETS``.

    Args:
        root: dataset root; None keeps following ``$DETECTRON2_DATASETS`` (or ``./datasets``).

    Raises:
        ValueError: the builtins were already pinned to a different root.
    """
    if root is not None:
        root = os.path.abspath(os.path.expanduser(root))
        previous = _REGISTERED_ROOTS.get("explicit")
        if previous is not None and previous != root:
            raise ValueError(
                f"register_builtin: datasets are already registered under {previous}; got "
                f"root={root}. Register once per process."
            )
        _REGISTERED_ROOTS["explicit"] = root
    sync_builtin()
