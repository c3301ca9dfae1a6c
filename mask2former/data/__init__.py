"""Data: catalogs, builtin datasets (registered explicitly), transforms, mappers and loaders.

Typical use::

    from mask2former.data import register_builtin, build_detection_train_loader
    register_builtin()  # $DETECTRON2_DATASETS or ./datasets
    loader = build_detection_train_loader(cfg)
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
