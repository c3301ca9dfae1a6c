"""The Cityscapes evaluator types: build_evaluator's choice and the official scripts' metrics
on a one-image Cityscapes-style dataset with hand-computed answers.

The tiny dataset of eval_fixtures scaled 4x to 64x64 (the official instance evaluation
ignores regions under 100 pixels): a car (exact), a person shifted 4 columns (IoU 30/42) and
sky elsewhere.
"""

import itertools

import numpy as np
import pytest
import torch
from eval_fixtures import gt_label_map, pred_label_map
from PIL import Image

from mask2former.config import get_cfg
from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    build_evaluator,
)
from mask2former.structures import Instances
from tests.optional import require_package

SCALE = 4
CITY = "testcity"
STEM = f"{CITY}_000000_000019"
# Contiguous label of eval_fixtures -> (Cityscapes label id, train id): car, person, sky.
LABELS = {0: (26, 13), 1: (24, 11), 2: (23, 10)}
_names = itertools.count()


def _scaled(labels: np.ndarray) -> np.ndarray:
    return np.kron(labels, np.ones((SCALE, SCALE), dtype=labels.dtype))


@pytest.fixture
def cityscapes_dataset(tmp_path):
    """Writes the gtFine label and instance PNGs; yields (name, record)."""
    require_package("cityscapesscripts")
    labels = _scaled(gt_label_map())
    label_ids = np.zeros(labels.shape, dtype=np.uint8)
    instance_ids = np.zeros(labels.shape, dtype=np.uint16)  # 16-bit PNG as Cityscapes
    for contiguous, (label_id, _) in LABELS.items():
        label_ids[labels == contiguous] = label_id
        # One instance per thing (id * 1000); stuff keeps its label id.
        instance_ids[labels == contiguous] = label_id * 1000 if contiguous < 2 else label_id
    gt_dir = tmp_path / "gtFine" / "val"
    (gt_dir / CITY).mkdir(parents=True)
    Image.fromarray(label_ids).save(gt_dir / CITY / f"{STEM}_gtFine_labelIds.png")
    Image.fromarray(instance_ids).save(gt_dir / CITY / f"{STEM}_gtFine_instanceIds.png")
    record = {
        "file_name": str(tmp_path / "leftImg8bit" / CITY / f"{STEM}_leftImg8bit.png"),
        "image_id": STEM,
        "height": labels.shape[0],
        "width": labels.shape[1],
    }
    name = f"test_cityscapes_{next(_names)}"
    DatasetCatalog.register(name, lambda: [dict(record)])
    MetadataCatalog.get(name).set(
        thing_classes=["car", "person"],
        stuff_classes=["car", "person", "sky"],
        thing_dataset_id_to_contiguous_id={26: 0, 24: 1},
        stuff_dataset_id_to_contiguous_id={26: 0, 24: 1, 23: 2},
        gt_dir=str(gt_dir),
        ignore_label=255,
    )
    yield name, record
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _outputs() -> dict:
    labels = torch.from_numpy(_scaled(pred_label_map()))
    train_ids = torch.zeros_like(labels)
    for contiguous, (_, train_id) in LABELS.items():
        train_ids[labels == contiguous] = train_id
    sem_seg = torch.nn.functional.one_hot(train_ids, 19).permute(2, 0, 1).float()
    instances = Instances(
        tuple(labels.shape),
        pred_masks=torch.stack([labels == 0, labels == 1]).float(),
        scores=torch.tensor([0.9, 0.8]),
        pred_classes=torch.tensor([0, 1]),
    )
    return {"sem_seg": sem_seg, "instances": instances}


def _expected_sem_seg() -> dict[str, float]:
    from cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling import args

    iou = 100 * (1 + 30 / 42 + 178 / 190) / 3  # car, person, sky (one class per category)
    # Instance-weighted: the person's pixels weigh avgClassSize / instance size; its 6 * 4
    # * 4 false-positive pixels (gt sky) count unweighted. The car is exact.
    weight = args.avgClassSize["person"] / (36 * SCALE**2)
    true_pos, misses = 30 * SCALE**2 * weight, 6 * SCALE**2 * weight
    person_iiou = true_pos / (true_pos + misses + 6 * SCALE**2)
    iiou = 100 * (1 + person_iiou) / 2
    return {"IoU": iou, "iIoU": iiou, "IoU_sup": iou, "iIoU_sup": iiou}


def _cfg(tmp_path, panoptic_on: bool):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "output")
    test = cfg.MODEL.MASK_FORMER.TEST
    test.PANOPTIC_ON, test.INSTANCE_ON, test.SEMANTIC_ON = panoptic_on, True, True
    return cfg


@pytest.mark.parametrize(
    "evaluator_type, expected",
    [
        ("cityscapes_sem_seg", [CityscapesSemSegEvaluator]),
        ("cityscapes_instance", [CityscapesInstanceEvaluator]),
        ("cityscapes_panoptic_seg", [CityscapesSemSegEvaluator, CityscapesInstanceEvaluator]),
    ],
)
def test_cityscapes_types_known_answers(cityscapes_dataset, tmp_path, evaluator_type, expected):
    name, record = cityscapes_dataset
    MetadataCatalog.get(name).set(evaluator_type=evaluator_type)
    evaluator = build_evaluator(_cfg(tmp_path, panoptic_on=False), name)
    evaluators = evaluator._evaluators if isinstance(evaluator, DatasetEvaluators) else [evaluator]
    assert [type(e) for e in evaluators] == expected

    evaluator.reset()
    evaluator.process([record], [_outputs()])
    results = evaluator.evaluate()
    if CityscapesSemSegEvaluator in expected:
        assert results["sem_seg"] == pytest.approx(_expected_sem_seg())
    if CityscapesInstanceEvaluator in expected:
        # Car matched at every IoU threshold, person at 0.50..0.70 (5 of 10).
        assert results["segm"] == pytest.approx({"AP": 75.0, "AP50": 100.0})


def test_cityscapes_panoptic_adds_pq_first(cityscapes_dataset, tmp_path):
    name, _ = cityscapes_dataset
    MetadataCatalog.get(name).set(evaluator_type="cityscapes_panoptic_seg")
    evaluator = build_evaluator(_cfg(tmp_path, panoptic_on=True), name)
    assert [type(e) for e in evaluator._evaluators] == [
        COCOPanopticEvaluator,
        CityscapesSemSegEvaluator,
        CityscapesInstanceEvaluator,
    ]
