"""Choose the evaluators of a dataset from its metadata ``evaluator_type`` (as the original
Mask2Former ``train_net.py`` does) and the ``MODEL.MASK_FORMER.TEST.*_ON`` switches."""

from __future__ import annotations

import os
from typing import Any

from mask2former.data.catalog import MetadataCatalog
from mask2former.evaluation.cityscapes_evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
)
from mask2former.evaluation.coco_evaluation import COCOEvaluator, InstanceSegEvaluator
from mask2former.evaluation.evaluator import DatasetEvaluator, DatasetEvaluators
from mask2former.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from mask2former.evaluation.sem_seg_evaluation import SemSegEvaluator

PANOPTIC_TYPES = (
    "coco_panoptic_seg",
    "ade20k_panoptic_seg",
    "cityscapes_panoptic_seg",
    "mapillary_vistas_panoptic_seg",
)
EVALUATOR_TYPES = (
    "sem_seg",
    "coco",
    *PANOPTIC_TYPES,
    "cityscapes_instance",
    "cityscapes_sem_seg",
)


def build_evaluator(
    cfg: Any, dataset_name: str, output_folder: str | None = None
) -> DatasetEvaluator:
    """Evaluators for ``dataset_name``.

    Args:
        cfg: the config (``MODEL.MASK_FORMER.TEST.{SEMANTIC,INSTANCE,PANOPTIC}_ON``).
        dataset_name: a registered dataset whose metadata has ``evaluator_type``.
        output_folder: where evaluators write files (``OUTPUT_DIR/inference`` by default).

    Raises:
        ValueError: the dataset has no or an unknown ``evaluator_type``, or the switches
            leave no evaluator.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type")
    if evaluator_type not in EVALUATOR_TYPES:
        raise ValueError(
            f"Dataset {dataset_name!r} has metadata evaluator_type {evaluator_type!r}; "
            f"expected one of {EVALUATOR_TYPES}"
        )
    test = cfg.MODEL.MASK_FORMER.TEST
    evaluators: list[DatasetEvaluator] = []

    if evaluator_type in ("sem_seg", "ade20k_panoptic_seg"):
        evaluators.append(SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder))
    if evaluator_type == "coco":
        evaluators.append(COCOEvaluator(dataset_name, output_dir=output_folder))
    if evaluator_type in PANOPTIC_TYPES and test.PANOPTIC_ON:
        evaluators.append(COCOPanopticEvaluator(dataset_name, output_folder))
    if evaluator_type == "coco_panoptic_seg":
        if test.INSTANCE_ON:
            evaluators.append(
                COCOEvaluator(dataset_name, tasks=("segm",), output_dir=output_folder)
            )
        if test.SEMANTIC_ON:
            evaluators.append(
                SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
            )
    if evaluator_type == "mapillary_vistas_panoptic_seg":
        if test.INSTANCE_ON:
            evaluators.append(
                InstanceSegEvaluator(dataset_name, tasks=("segm",), output_dir=output_folder)
            )
        if test.SEMANTIC_ON:
            evaluators.append(
                SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)
            )
    if evaluator_type == "cityscapes_instance":
        evaluators.append(CityscapesInstanceEvaluator(dataset_name))
    if evaluator_type == "cityscapes_sem_seg":
        evaluators.append(CityscapesSemSegEvaluator(dataset_name))
    if evaluator_type == "cityscapes_panoptic_seg":
        if test.SEMANTIC_ON:
            evaluators.append(CityscapesSemSegEvaluator(dataset_name))
        if test.INSTANCE_ON:
            evaluators.append(CityscapesInstanceEvaluator(dataset_name))
    if evaluator_type == "ade20k_panoptic_seg" and test.INSTANCE_ON:
        evaluators.append(
            InstanceSegEvaluator(dataset_name, tasks=("segm",), output_dir=output_folder)
        )

    if not evaluators:
        raise ValueError(
            f"No evaluator for dataset {dataset_name!r} (evaluator_type {evaluator_type!r}) "
            "with the MODEL.MASK_FORMER.TEST.*_ON switches of this config"
        )
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)
