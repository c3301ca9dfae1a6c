"""Dataset readers, builtin registrations (known to the catalogs without a call) and the
one-call registrations of a user's own data (:mod:`mask2former.data.datasets.custom`)."""

from mask2former.data.datasets.builtin import register_builtin
from mask2former.data.datasets.builtin_meta import builtin_metadata, load_class_table
from mask2former.data.datasets.cityscapes import (
    load_cityscapes_instances,
    load_cityscapes_panoptic,
    load_cityscapes_semantic,
)
from mask2former.data.datasets.coco import load_coco_json, load_sem_seg
from mask2former.data.datasets.coco_panoptic import load_coco_panoptic_json
from mask2former.data.datasets.custom import (
    register_coco_instances,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    register_sem_seg,
)
from mask2former.data.datasets.custom_config import register_custom_datasets
from mask2former.data.datasets.demo import register_demo

__all__ = [
    "builtin_metadata",
    "load_cityscapes_instances",
    "load_cityscapes_panoptic",
    "load_cityscapes_semantic",
    "load_class_table",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "register_builtin",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_custom_datasets",
    "register_demo",
    "register_sem_seg",
]
