"""COCOPanopticEvaluator's PQ backends: ours by default, panopticapi's on request."""

import sys

import pytest
from eval_fixtures import model_outputs

from mask2former.evaluation.panoptic_evaluation import COCOPanopticEvaluator
from tests.optional import require_package


def _evaluate(dataset, **kwargs):
    evaluator = COCOPanopticEvaluator(dataset["name"], **kwargs)
    evaluator.reset()
    evaluator.process([dataset["record"]], [model_outputs()])
    return evaluator.evaluate()["panoptic_seg"]


def test_default_backend_needs_no_panopticapi(tiny_panoptic, monkeypatch):
    monkeypatch.delenv("MASK2FORMER_PQ_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "panopticapi", None)
    monkeypatch.setitem(sys.modules, "panopticapi.evaluation", None)
    res = _evaluate(tiny_panoptic)
    # Every segment matches (IoU > 0.5): PQ = mean IoU of box 1, ball 30/42, sky 178/190.
    assert res["PQ"] == pytest.approx(100 * (1.0 + 30 / 42 + 178 / 190) / 3)
    with pytest.raises(ImportError, match="pip install panopticapi-lite"):
        COCOPanopticEvaluator(tiny_panoptic["name"], backend="panopticapi")


def test_backends_agree(tiny_panoptic, monkeypatch):
    require_package("panopticapi.evaluation", "panopticapi-lite")
    ours = _evaluate(tiny_panoptic, backend="mask2former")
    monkeypatch.setenv("MASK2FORMER_PQ_BACKEND", "panopticapi")
    theirs = _evaluate(tiny_panoptic)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-7)


def test_unknown_backend_is_refused(tiny_panoptic):
    with pytest.raises(ValueError, match="'pycocotools'.*expected one of"):
        COCOPanopticEvaluator(tiny_panoptic["name"], backend="pycocotools")
