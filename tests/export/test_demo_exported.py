"""demo/demo.py --exported FILE: the same files as the PyTorch model gives (CLI, demo model)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.export import ExportedPredictor
from tests.cli_helpers import finish_cli, start_cli
from tests.export.conftest import DEMO_CONFIG
from tests.optional import require_package

# Resized to a short side of 160 (INPUT.MIN_SIZE_TEST): 160x213 and 160x240, padded to 160x224
# and 160x256, so only a graph with dynamic sizes takes both.
INPUT_SIZES = {"wide.png": (150, 200), "wider.png": (120, 180)}


def run_demo(inputs, output, *args: str) -> None:
    finish_cli(
        start_cli(
            "demo/demo.py",
            ["--input", str(inputs), "--output", str(output), "--task", "panoptic",
             "--save-raw", "--batch-size", "2", "--num-workers", "0", *args],
        )
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo_outputs(demo_onnx_dynamic, tmp_path_factory):
    """The demo run with the PyTorch model and with its dynamic ONNX export: (torch, onnx) dirs."""
    require_package("onnxruntime")
    _, model, path = demo_onnx_dynamic
    root = tmp_path_factory.mktemp("demo_exported")
    weights = root / "model.pth"
    torch.save({"model": model.state_dict()}, weights)
    rng = np.random.default_rng(0)
    (root / "in").mkdir()
    for name, (height, width) in INPUT_SIZES.items():
        # Smooth images: the random model then predicts a few large segments.
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "in" / name), cv2.resize(small, (width, height)))
    run_demo(
        root / "in", root / "torch", "--config-file", DEMO_CONFIG, "--opts",
        "MODEL.WEIGHTS", str(weights), "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD", "0.0",
    )  # fmt: skip
    # No --config-file: the one recorded in model.json (the thresholds are the export's).
    run_demo(root / "in", root / "onnx", "--exported", str(path))
    return root / "torch", root / "onnx"


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_exported_demo_writes_the_torch_demos_pictures_and_results(demo_outputs):
    torch_dir, onnx_dir = demo_outputs
    for name, size in INPUT_SIZES.items():
        # identical panoptic segments, hence identical pictures
        np.testing.assert_array_equal(
            read(onnx_dir / "panoptic" / name), read(torch_dir / "panoptic" / name)
        )
        picture = read(onnx_dir / name)
        assert picture.shape == (*size, 3)
        np.testing.assert_array_equal(picture, read(torch_dir / name))
        # semantic labels from scores within 1e-4: a near-tie may flip a rare pixel
        labels, expected = read(onnx_dir / "sem_seg" / name), read(torch_dir / "sem_seg" / name)
        assert (labels != expected).mean() < 1e-3
    panoptic, expected = (json.loads((d / "panoptic.json").read_text()) for d in demo_outputs)
    assert panoptic["annotations"] == expected["annotations"]
    assert sum(len(a["segments_info"]) for a in expected["annotations"]) > 0
    instances, expected = (json.loads((d / "instances.json").read_text()) for d in demo_outputs)
    assert [(r["image_id"], r["category_id"]) for r in instances] == [
        (r["image_id"], r["category_id"]) for r in expected
    ]
    np.testing.assert_allclose(
        [r["score"] for r in instances], [r["score"] for r in expected], rtol=1e-4, atol=1e-5
    )


def test_exported_predictor_refuses_a_config_of_another_model(demo_onnx_dynamic):
    require_package("onnxruntime")
    cfg, _, path = demo_onnx_dynamic
    other = cfg.clone()
    other.defrost()
    other.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 133
    other.INPUT.FORMAT = "BGR"
    with pytest.raises(ValueError, match=r"NUM_CLASSES is 133 in the config but 5 in the export"):
        ExportedPredictor(path).check_config(other)
    ExportedPredictor(path).check_config(cfg)
