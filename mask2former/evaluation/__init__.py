"""Evaluation: the evaluator protocol, inference over a dataset, and the semantic, COCO
instance, COCO panoptic and Cityscapes evaluators."""

from mask2former.evaluation.build import build_evaluator
from mask2former.evaluation.cityscapes_evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
)
from mask2former.evaluation.coco_evaluation import COCOEvaluator, InstanceSegEvaluator
from mask2former.evaluation.evaluator import (
    DatasetEvaluator,
    DatasetEvaluators,
    inference_context,
    inference_on_dataset,
    print_csv_format,
)
from mask2former.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from mask2former.evaluation.sem_seg_evaluation import SemSegEvaluator

__all__ = [
    "COCOEvaluator",
    "COCOPanopticEvaluator",
    "CityscapesInstanceEvaluator",
    "CityscapesSemSegEvaluator",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "InstanceSegEvaluator",
    "SemSegEvaluator",
    "build_evaluator",
    "inference_context",
    "inference_on_dataset",
    "print_csv_format",
]
