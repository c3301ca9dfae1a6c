"""examples/onnxruntime_semantic.py runs with onnxruntime and numpy only (torch blocked)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.optional import require_package
from tests.tiny_config import REPO_ROOT

SCRIPT = f"{REPO_ROOT}/examples/onnxruntime_semantic.py"
# ``import torch`` (and anything importing it) raises ImportError in the child process.
NO_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


# Smaller than the fixed file's 160x224 (padded to it); any size for the dynamic file.
@pytest.mark.parametrize(
    ("exported", "size"), [("demo_onnx", (150, 200)), ("demo_onnx_dynamic", (200, 250))]
)
def test_example_without_torch_gives_the_models_semantic_labels(exported, size, request, tmp_path):
    require_package("onnxruntime")
    _, model, path = request.getfixturevalue(exported)
    torch.manual_seed(7)
    image = torch.randint(0, 256, (*size, 3), dtype=torch.uint8)
    np.save(tmp_path / "image.npy", image.numpy())
    output = tmp_path / "labels.npy"
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, SCRIPT, str(path), str(tmp_path / "image.npy"),
         "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "classes present:" in result.stdout
    with torch.no_grad():
        expected = model([{"image": image.permute(2, 0, 1)}])[0]["sem_seg"].argmax(0)
    labels = torch.from_numpy(np.load(output))
    assert labels.shape == expected.shape
    assert (labels != expected).float().mean() < 1e-3


def test_the_torch_block_is_real(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\n")
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(probe)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "import of torch halted" in result.stderr
