"""Evaluation under 2 gloo processes gathers to exactly the single-process metrics."""

import json
import math

import pytest
from distributed_eval import evaluation_worker

from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.engine.launch import launch
from mask2former.engine.trainer import EVAL_RESULTS_FILE


def _flat(results: dict) -> dict[str, float]:
    return {
        f"{task}/{name}": value
        for task, metrics in results.items()
        for name, value in metrics.items()
    }


@pytest.mark.slow
def test_two_process_evaluation_equals_single_process(tmp_path):
    demo_root = generate_demo_dataset(str(tmp_path / "demo_shapes"), 1, 4)
    single, double = tmp_path / "single", tmp_path / "double"
    launch(evaluation_worker, 1, args=(demo_root, str(single)))
    launch(evaluation_worker, 2, dist_url="auto", args=(demo_root, str(double)))
    one = _flat(json.loads((single / EVAL_RESULTS_FILE).read_text()))
    two = _flat(json.loads((double / EVAL_RESULTS_FILE).read_text()))

    assert {key.split("/")[0] for key in one} == {"panoptic_seg", "segm", "sem_seg"}
    assert one.keys() == two.keys()
    for key, value in one.items():
        assert value == two[key] or (math.isnan(value) and math.isnan(two[key])), key
    # Imperfect predictions, so equal metrics are not trivially 100.
    assert 0 < one["panoptic_seg/PQ"] < 100 and 0 < one["sem_seg/mIoU"] < 100
    assert 0 < one["segm/AP"] < 100
