"""Data: catalogs, builtin datasets (known without a call), transforms, mappers and loaders.

Typical use::

    from mask2former.data import build_detection_train_loader
    loader = build_detection_train_loader(cfg)  # builtins under $DETECTRON2_DATASETS
    # register_builtin("/data") pins the builtins to another root
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
from mask2former.data.datasets import register_builtin, register_demo
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
    "register_demo",
]
