"""Dataset mappers: record dict -> model input dict (training mappers and the test mapper)."""

from mask2former.data.dataset_mappers.coco_lsj import (
    COCOInstanceNewBaselineDatasetMapper,
    COCOPanopticNewBaselineDatasetMapper,
)
from mask2former.data.dataset_mappers.mask_former_instance import MaskFormerInstanceDatasetMapper
from mask2former.data.dataset_mappers.mask_former_panoptic import MaskFormerPanopticDatasetMapper
from mask2former.data.dataset_mappers.mask_former_semantic import MaskFormerSemanticDatasetMapper
from mask2former.data.dataset_mappers.test_mapper import DatasetMapper

# INPUT.DATASET_MAPPER_NAME -> training mapper class (names as in the original train_net.py).
TRAIN_MAPPERS = {
    "mask_former_semantic": MaskFormerSemanticDatasetMapper,
    "mask_former_panoptic": MaskFormerPanopticDatasetMapper,
    "mask_former_instance": MaskFormerInstanceDatasetMapper,
    "coco_instance_lsj": COCOInstanceNewBaselineDatasetMapper,
    "coco_panoptic_lsj": COCOPanopticNewBaselineDatasetMapper,
}

__all__ = [
    "COCOInstanceNewBaselineDatasetMapper",
    "COCOPanopticNewBaselineDatasetMapper",
    "DatasetMapper",
    "MaskFormerInstanceDatasetMapper",
    "MaskFormerPanopticDatasetMapper",
    "MaskFormerSemanticDatasetMapper",
    "TRAIN_MAPPERS",
]
