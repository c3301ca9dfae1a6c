"""Registration of the synthetic demo dataset (generated on first use when missing)."""

from __future__ import annotations

import os

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.builtin_meta import panoptic_metadata
from mask2former.data.datasets.coco import load_coco_json, load_sem_seg
from mask2former.data.datasets.coco_panoptic import load_coco_panoptic_json
from mask2former.data.datasets.demo_files import CATEGORIES, ensure_demo_dataset

__all__ = ["demo_metadata", "register_demo"]


def demo_metadata() -> dict:
    """Panoptic-style metadata of the demo classes (3 things, then 2 stuff)."""
    return panoptic_metadata(CATEGORIES)


def register_demo(root: str, *, generate: bool = True) -> None:
    """Register ``demo_shapes_{train,val}_{panoptic,instance,sem_seg}`` under ``root``.

    The panoptic records also carry ``sem_seg_file_name``, so one dataset trains the panoptic
    mapper and evaluates PQ, AP (``json_file``) and mIoU (``sem_seg_root``).

    Args:
        root: folder of the demo dataset (``<datasets root>/demo_shapes``).
        generate: create the default dataset there on first load when it is missing.
    """
    meta = demo_metadata()
    thing_meta = {
        k: meta[k] for k in ("thing_classes", "thing_colors", "thing_dataset_id_to_contiguous_id")
    }

    def prepare() -> None:
        if generate:
            ensure_demo_dataset(root)

    for split in ("train", "val"):
        image_root = os.path.join(root, "images", split)
        panoptic_root = os.path.join(root, f"panoptic_{split}")
        panoptic_json = os.path.join(root, "annotations", f"panoptic_{split}.json")
        instances_json = os.path.join(root, "annotations", f"instances_{split}.json")
        sem_seg_root = os.path.join(root, f"sem_seg_{split}")

        name = f"demo_shapes_{split}_panoptic"

        def load_panoptic(
            name=name,
            image_root=image_root,
            panoptic_root=panoptic_root,
            panoptic_json=panoptic_json,
            sem_seg_root=sem_seg_root,
        ):
            prepare()
            return load_coco_panoptic_json(
                panoptic_json,
                image_root,
                panoptic_root,
                meta,
                semseg_dir=sem_seg_root,
                image_ext=".png",
                dataset_name=name,
            )

        DatasetCatalog.register(name, load_panoptic)
        MetadataCatalog.get(name).set(
            image_root=image_root,
            panoptic_root=panoptic_root,
            panoptic_json=panoptic_json,
            json_file=instances_json,
            sem_seg_root=sem_seg_root,
            evaluator_type="coco_panoptic_seg",
            ignore_label=255,
            label_divisor=1000,
            **meta,
        )

        name = f"demo_shapes_{split}_instance"

        def load_instance(name=name, instances_json=instances_json, image_root=image_root):
            prepare()
            return load_coco_json(instances_json, image_root, name)

        DatasetCatalog.register(name, load_instance)
        MetadataCatalog.get(name).set(
            image_root=image_root, json_file=instances_json, evaluator_type="coco", **thing_meta
        )

        name = f"demo_shapes_{split}_sem_seg"

        def load_semantic(name=name, sem_seg_root=sem_seg_root, image_root=image_root):
            prepare()
            return load_sem_seg(sem_seg_root, image_root, "png", "png", dataset_name=name)

        DatasetCatalog.register(name, load_semantic)
        MetadataCatalog.get(name).set(
            image_root=image_root,
            sem_seg_root=sem_seg_root,
            evaluator_type="sem_seg",
            ignore_label=255,
            stuff_classes=meta["stuff_classes"],
            stuff_colors=meta["stuff_colors"],
            stuff_dataset_id_to_contiguous_id=meta["stuff_dataset_id_to_contiguous_id"],
        )
