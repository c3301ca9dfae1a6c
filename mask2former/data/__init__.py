"""Data: catalogs, builtin datasets (known without a call), transforms, mappers and loaders.

Typical use::

    from mask2former.data import build_detection_train_loader
    loader = build_detection_train_loader(cfg)  # builtins under $DETECTRON2_DATASETS
    # register_builtin("/data") pins the builtins to another root
    register_sem_seg("my_train", "imgs/", "labels/", classes=["road", "car"])  # own data
"""

from mask2former.data.build import (
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    build_train_mapper,
    get_detection_dataset_dicts,
)
from mask2former.data.catalog import DatasetCatalog, Metadata, MetadataCatalog
from mask2former.data.dataset_mappers import (
    TRAIN_MAPPERS,
    COCOInstanceNewBaselineDatasetMapper,
    COCOPanopticNewBaselineDatasetMapper,
    DatasetMapper,
    MaskFormerInstanceDatasetMapper,
    MaskFormerPanopticDatasetMapper,
    MaskFormerSemanticDatasetMapper,
)
from mask2former.data.datasets import (
    register_builtin,
    register_coco_instances,
    register_coco_panoptic,
    register_coco_panoptic_separated,
    register_custom_datasets,
    register_demo,
    register_sem_seg,
)
from mask2former.data.detection_utils import read_image
from mask2former.data.samplers import InferenceSampler, RepeatFactorTrainingSampler, TrainingSampler

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "DatasetCatalog",
    "DatasetMapper",
    "InferenceSampler",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "Metadata",
    "MetadataCatalog",
    "RepeatFactorTrainingSampler",
    "TRAIN_MAPPERS",
    "TrainingSampler",
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "build_train_mapper",
    "get_detection_dataset_dicts",
    "read_image",
    "register_builtin",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_custom_datasets",
    "register_demo",
    "register_sem_seg",
]
