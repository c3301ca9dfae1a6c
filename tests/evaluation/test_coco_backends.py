"""COCOEvaluator's AP backends: pycocotools (default) and faster-coco-eval give equal numbers."""

import math
import sys

import numpy as np
import pytest
import torch
from eval_fixtures import SIZE, model_outputs

from mask2former.evaluation.coco_evaluation import COCOEvaluator
from mask2former.structures import Boxes, Instances
from tests.optional import require_package


def _evaluate(dataset, outputs, **kwargs):
    output_dir = str(dataset["root"] / "coco_eval")
    evaluator = COCOEvaluator(dataset["name"], ("segm", "bbox"), output_dir=output_dir, **kwargs)
    evaluator.reset()
    evaluator.process([dataset["record"]], [outputs])
    return evaluator.evaluate()


def _random_instances(seed, num=10):
    """Shifted copies of the box (class 0, rows/cols 2..7) and ball (class 1, 9..14) plus
    random boxes, with random classes for some and random scores."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((num, SIZE, SIZE), dtype=np.float32)
    boxes = np.zeros((num, 4), dtype=np.float32)
    classes = rng.integers(0, 2, num)
    for i in range(num):
        if i < 6:  # near the object of its class (box at 2, ball at 9)
            start = 2 + 7 * int(classes[i])
            y0, x0 = np.clip(start + rng.integers(-2, 3, size=2), 0, SIZE - 6)
            h, w = rng.integers(4, 8, size=2)
        else:
            y0, x0 = rng.integers(0, SIZE - 4, size=2)
            h, w = rng.integers(3, 9, size=2)
        y1, x1 = min(SIZE, y0 + h), min(SIZE, x0 + w)
        masks[i, y0:y1, x0:x1] = 1
        boxes[i] = [x0, y0, x1, y1]
    return {
        "instances": Instances(
            (SIZE, SIZE),
            pred_masks=torch.from_numpy(masks),
            scores=torch.from_numpy(rng.random(num).astype(np.float32)),
            pred_classes=torch.from_numpy(classes),
            pred_boxes=Boxes(torch.from_numpy(boxes)),
        )
    }


def test_backends_give_equal_numbers(tiny_panoptic):
    require_package("faster_coco_eval", "faster-coco-eval")
    cases = [model_outputs(), model_outputs(ball_class=0)]
    cases += [_random_instances(seed) for seed in range(8)]
    for outputs in cases:
        ours = _evaluate(tiny_panoptic, outputs, backend="pycocotools")
        theirs = _evaluate(tiny_panoptic, outputs, backend="faster-coco-eval")
        for task in ("segm", "bbox"):
            assert ours[task].keys() == theirs[task].keys()
            for key, value in ours[task].items():
                if math.isnan(value):
                    assert math.isnan(theirs[task][key]), (task, key)
                else:
                    assert theirs[task][key] == pytest.approx(value, abs=1e-9), (task, key)


def test_backend_choice_and_errors(tiny_panoptic, monkeypatch):
    monkeypatch.setenv("MASK2FORMER_COCO_BACKEND", "cocoapi")
    with pytest.raises(ValueError, match="'cocoapi'.*expected one of"):
        _evaluate(tiny_panoptic, model_outputs())
    monkeypatch.delenv("MASK2FORMER_COCO_BACKEND")
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    with pytest.raises(ImportError, match="pip install faster-coco-eval"):
        _evaluate(tiny_panoptic, model_outputs(), backend="faster-coco-eval")
    assert _evaluate(tiny_panoptic, model_outputs())["segm"]["AP"] == pytest.approx(75.0)
