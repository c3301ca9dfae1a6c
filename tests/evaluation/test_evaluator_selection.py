import json

import numpy as np
import pytest
import torch
from eval_fixtures import SIZE, model_outputs
from PIL import Image

from mask2former.config import get_cfg
from mask2former.data.catalog import MetadataCatalog
from mask2former.engine.trainer import EVAL_RESULTS_FILE, evaluate
from mask2former.evaluation import (
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluators,
    SemSegEvaluator,
    build_evaluator,
    inference_on_dataset,
)


def _cfg(tmp_path, dataset_name, panoptic=True, instance=True, semantic=True):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "output")
    cfg.DATASETS.TEST = (dataset_name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.MIN_SIZE_TEST = 0  # keep the 16x16 image as it is
    cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = panoptic
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = instance
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = semantic
    return cfg


class _FixedModel(torch.nn.Module):
    """Returns the hand-made outputs for every image; records that it ran in eval mode."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.modes = []

    def forward(self, batch):
        self.modes.append(self.training)
        assert all(tuple(d["image"].shape[-2:]) == (SIZE, SIZE) for d in batch)
        return [model_outputs() for _ in batch]


def test_panoptic_dataset_gets_three_evaluators(tiny_panoptic, tmp_path):
    evaluator = build_evaluator(_cfg(tmp_path, tiny_panoptic["name"]), tiny_panoptic["name"])
    assert isinstance(evaluator, DatasetEvaluators)
    kinds = [type(e) for e in evaluator._evaluators]
    assert kinds == [COCOPanopticEvaluator, COCOEvaluator, SemSegEvaluator]

    only_pq = _cfg(tmp_path, tiny_panoptic["name"], instance=False, semantic=False)
    assert isinstance(build_evaluator(only_pq, tiny_panoptic["name"]), COCOPanopticEvaluator)


def test_unknown_evaluator_type_is_named(tmp_path):
    MetadataCatalog.get("test_unknown_type").set(evaluator_type="weird")
    with pytest.raises(ValueError, match="weird"):
        build_evaluator(_cfg(tmp_path, "test_unknown_type"), "test_unknown_type")
    MetadataCatalog.remove("test_unknown_type")


def test_evaluate_writes_eval_results_json(tiny_panoptic, tmp_path):
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(image).save(tiny_panoptic["record"]["file_name"])
    cfg = _cfg(tmp_path, tiny_panoptic["name"])
    model = _FixedModel().train()
    results = evaluate(cfg, model)
    assert model.modes == [False] and model.training  # eval mode during, restored after
    assert set(results) == {"panoptic_seg", "segm", "sem_seg"}
    saved = json.load(open(tmp_path / "output" / EVAL_RESULTS_FILE))
    assert saved["panoptic_seg"]["PQ"] == pytest.approx(results["panoptic_seg"]["PQ"])
    assert saved["segm"]["AP"] == pytest.approx(75.0)
    assert saved["sem_seg"]["mIoU"] == pytest.approx(results["sem_seg"]["mIoU"])


def test_inference_on_dataset_without_evaluator_runs_model():
    model = _FixedModel()
    batch = [{"image": torch.zeros(3, SIZE, SIZE)}]
    assert inference_on_dataset(model, [batch, batch], None) == {}
    assert model.modes == [False, False]
