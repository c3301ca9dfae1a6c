"""build_evaluator: every evaluator_type of the builtin datasets gets the original's evaluators,
in the original's order, and they give the hand-computed metrics of the tiny dataset.

The tiny dataset (eval_fixtures): box exact, ball shifted one column (IoU 30/42), sky stuff.
"""

import itertools

import pytest
import torch
from eval_fixtures import model_outputs, register_tiny_panoptic

from mask2former.config import get_cfg
from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.evaluation import (
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    InstanceSegEvaluator,
    SemSegEvaluator,
    build_evaluator,
)
from mask2former.evaluation.build import EVALUATOR_TYPES
from mask2former.structures import Boxes

# The original train_net.py's build_evaluator with all three TEST.*_ON switches on.
EXPECTED_EVALUATORS = {
    "sem_seg": [SemSegEvaluator],
    "coco": [COCOEvaluator],
    "coco_panoptic_seg": [COCOPanopticEvaluator, COCOEvaluator, SemSegEvaluator],
    "ade20k_panoptic_seg": [SemSegEvaluator, COCOPanopticEvaluator, InstanceSegEvaluator],
    "mapillary_vistas_panoptic_seg": [
        COCOPanopticEvaluator,
        InstanceSegEvaluator,
        SemSegEvaluator,
    ],
}
CITYSCAPES_TYPES = ("cityscapes_instance", "cityscapes_sem_seg", "cityscapes_panoptic_seg")

# Hand-computed on the tiny dataset (one ignored ground-truth pixel in the semantic map).
MIOU = 100 * (1 + 30 / 42 + 177 / 189) / 3
PQ = 100 * (1 + 30 / 42 + 178 / 190) / 3
# Box matched at every IoU threshold, ball at 0.50..0.70 (5 of 10): (100 + 50) / 2.
AP = 75.0
_names = itertools.count()


def _cfg(tmp_path):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "output")
    test = cfg.MODEL.MASK_FORMER.TEST
    test.PANOPTIC_ON = test.INSTANCE_ON = test.SEMANTIC_ON = True
    return cfg


def _outputs_with_boxes():
    outputs = model_outputs()
    # XYXY of the box (exact) and of the shifted ball: box IoU 1 and 30/42, as the masks.
    outputs["instances"].pred_boxes = Boxes(torch.tensor([[2.0, 2, 8, 8], [10, 9, 16, 15]]))
    return outputs


def _evaluate(evaluator, record, outputs):
    evaluator.reset()
    evaluator.process([record], [outputs])
    return evaluator.evaluate()


def test_every_builtin_evaluator_type_is_covered_here():
    assert set(EVALUATOR_TYPES) == set(EXPECTED_EVALUATORS) | set(CITYSCAPES_TYPES)


@pytest.mark.parametrize("evaluator_type", sorted(EXPECTED_EVALUATORS))
def test_evaluators_and_metrics_of_each_type(tmp_path, evaluator_type):
    dataset_fixture = register_tiny_panoptic(tmp_path, evaluator_type)
    dataset = next(dataset_fixture)
    evaluator = build_evaluator(_cfg(tmp_path), dataset["name"])
    evaluators = evaluator._evaluators if isinstance(evaluator, DatasetEvaluators) else [evaluator]
    assert [type(e) for e in evaluators] == EXPECTED_EVALUATORS[evaluator_type]

    results = _evaluate(evaluator, dataset["record"], _outputs_with_boxes())
    if evaluator_type == "coco":  # tasks come from the predictions: boxes and masks
        assert set(results) == {"bbox", "segm"}
        assert results["bbox"]["AP"] == pytest.approx(AP)
    elif evaluator_type == "sem_seg":
        assert set(results) == {"sem_seg"}
    else:  # the panoptic types also evaluate instances on masks only
        assert set(results) == {"panoptic_seg", "segm", "sem_seg"}
        assert results["panoptic_seg"]["PQ"] == pytest.approx(PQ)
    if "segm" in results:
        assert results["segm"]["AP"] == pytest.approx(AP)
        assert results["segm"]["AP-ball"] == pytest.approx(50.0)
    if "sem_seg" in results:
        assert results["sem_seg"]["mIoU"] == pytest.approx(MIOU)
    next(dataset_fixture, None)  # unregister


@pytest.fixture
def thing_subset_dataset(tmp_path):
    """The tiny dataset laid out as ADE20K panoptic: contiguous ids cover stuff and things
    (sky 0, box 1, ball 2), so the thing ids {1, 2} are not 0..K-1."""
    base = register_tiny_panoptic(tmp_path)
    tiny = next(base)
    to_subset = {0: 1, 1: 2, 2: 0}
    record = dict(tiny["record"])
    record["segments_info"] = [
        dict(s, category_id=to_subset[s["category_id"]]) for s in record["segments_info"]
    ]
    name = f"test_thing_subset_{next(_names)}"
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(
        thing_classes=["sky", "box", "ball"],
        thing_dataset_id_to_contiguous_id={1: 1, 2: 2},
        evaluator_type="ade20k_panoptic_seg",
    )
    yield name, record
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)
    next(base, None)


def test_instance_seg_evaluator_on_a_thing_subset(thing_subset_dataset, tmp_path):
    name, record = thing_subset_dataset
    outputs = model_outputs()
    outputs["instances"].pred_classes = torch.tensor([1, 2])  # box, ball in this layout
    out_dir = str(tmp_path / "subset")
    results = _evaluate(InstanceSegEvaluator(name, output_dir=out_dir), record, outputs)["segm"]
    assert results["AP"] == pytest.approx(AP)
    # thing_classes lists every class, so per-class keys use the dataset ids.
    assert (results["AP-1"], results["AP-2"]) == pytest.approx((100.0, 50.0))
    with pytest.raises(ValueError, match="InstanceSegEvaluator"):
        _evaluate(COCOEvaluator(name, output_dir=out_dir), record, outputs)
