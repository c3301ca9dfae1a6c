"""Both kinds of web demo model give detectron2-style predictions at each image's size, and
the page's score threshold reaches the panoptic result."""

from __future__ import annotations

import numpy as np
import torch

from mask2former.app.segmenter import ConfigSegmenter, TransformersSegmenter
from mask2former.hf import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from mask2former.hf.image_processing import Mask2FormerImageProcessor
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.tiny_config import tiny_cfg

SIZES = ((70, 90), (96, 64))


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in SIZES]


def _check_sizes(predictions: list[dict]) -> None:
    assert len(predictions) == len(SIZES)
    for output, size in zip(predictions, SIZES):
        assert output["panoptic_seg"][0].shape == size
        assert output["sem_seg"].shape[-2:] == size
        assert output["instances"].image_size == size


def test_config_segmenter_threshold_is_the_panoptic_threshold():
    torch.manual_seed(0)
    segmenter = ConfigSegmenter(tiny_cfg())
    assert segmenter.default_threshold == 0.8
    assert segmenter.metadata.thing_classes == ["circle", "square", "triangle"]
    kept = segmenter.predict(_images(), 0.0)
    _check_sizes(kept)
    assert any(output["panoptic_seg"][1] for output in kept)
    # No class probability exceeds 1: nothing is kept, and the next call is not affected.
    assert not any(output["panoptic_seg"][1] for output in segmenter.predict(_images(), 1.0))
    again = segmenter.predict(_images(), 0.0)
    assert [o["panoptic_seg"][1] for o in again] == [o["panoptic_seg"][1] for o in kept]


def test_transformers_folder_segmenter(tmp_path):
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**tiny_config_dict(3)))
    model.save_pretrained(tmp_path)
    size = {"shortest_edge": 96, "longest_edge": 160}
    Mask2FormerImageProcessor(size=size).save_pretrained(tmp_path)
    segmenter = TransformersSegmenter(str(tmp_path))
    assert segmenter.metadata["thing_classes"] == ["class_0", "class_1", "class_2"]
    predictions = segmenter.predict(_images(), 0.0)
    _check_sizes(predictions)
    assert predictions[0]["sem_seg"].shape[0] == 3
    assert all(info["isthing"] for o in predictions for info in o["panoptic_seg"][1])
