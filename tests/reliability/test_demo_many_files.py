"""demo/demo.py on many files (issue 12, item 1): a bad image is reported by name, the others
are processed, and the exit status is non-zero with a count of failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.modeling import build_model
from tests.cli_helpers import start_cli
from tests.tiny_config import tiny_cfg, tiny_opts


@pytest.mark.slow
def test_one_bad_image_does_not_throw_away_the_others(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    torch.save({"model": build_model(tiny_cfg()).state_dict()}, weights)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(inputs / name)
    (inputs / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = ["--input", str(inputs / "*.png"), "--output", str(tmp_path / "out")]
    args += ["--batch-size", "2", "--opts", *tiny_opts(**{"MODEL.WEIGHTS": str(weights)})]
    process = start_cli("demo/demo.py", args, DETECTRON2_DATASETS=str(tmp_path / "datasets"))
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 1, output[-3000:]
    bad = inputs / "b.png"
    assert f"Skipping {bad}: Cannot read image file {bad}" in output
    assert output.strip().splitlines()[-1] == f"1 of 3 images failed: {bad}"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
