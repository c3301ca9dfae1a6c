"""Tools that process many files report a bad file by name, go on with the others, and exit
non-zero with the count (issue 12, item 1): dataset preparation scripts and evaluation."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import REPO_ROOT, cli_env

DATASETS_DIR = Path(REPO_ROOT) / "datasets"
H, W = 12, 16


def _ade_tree(root: Path, stems: list[str], corrupt: str) -> Path:
    """A miniature ADEChallengeData2016 training split; ``corrupt``'s semantic PNG is cut
    short (a real truncated file); validation holds one good image."""
    ade = root / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for split, split_stems in (("training", stems), ("validation", ["val_1"])):
        for sub in ("images", "annotations", "annotations_instance"):
            (ade / sub / split).mkdir(parents=True, exist_ok=True)
        for stem in split_stems:
            image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
            Image.fromarray(image).save(ade / "images" / split / f"{stem}.jpg")
            semantic = np.full((H, W), 1, dtype=np.uint8)  # wall
            Image.fromarray(semantic).save(ade / "annotations" / split / f"{stem}.png")
            instance = np.zeros((H, W, 3), dtype=np.uint8)
            Image.fromarray(instance).save(ade / "annotations_instance" / split / f"{stem}.png")
    bad = ade / "annotations" / "training" / f"{corrupt}.png"
    bad.write_bytes(bad.read_bytes()[:40])
    return ade


def test_prepare_script_cli_skips_a_corrupt_png_and_exits_with_the_count(tmp_path):
    ade = _ade_tree(tmp_path, ["a", "b", "c"], corrupt="b")
    process = subprocess.run(
        [sys.executable, str(DATASETS_DIR / "prepare_ade20k_sem_seg.py"), "--root", str(tmp_path)]
        + ["--workers", "2"],
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    last_line = process.stderr.strip().splitlines()[-1]
    assert process.returncode == 1, process.stderr[-2000:]
    bad = str(ade / "annotations" / "training" / "b.png")
    assert last_line.startswith("Error: 1 of 4 label files failed and were skipped"), last_line
    assert bad in last_line, last_line
    assert f"Skipping {bad}" in process.stderr  # reported when it happened
    written = sorted(p.name for p in (ade / "annotations_detectron2" / "training").iterdir())
    assert written == ["a.png", "c.png"]
    assert (ade / "annotations_detectron2" / "validation" / "val_1.png").is_file()


@pytest.fixture(scope="module")
def panoptic_script():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(DATASETS_DIR))
        return importlib.import_module("prepare_ade20k_pan_seg")


def test_panoptic_json_keeps_the_good_images(tmp_path, panoptic_script):
    ade = _ade_tree(tmp_path, ["a", "b", "c"], corrupt="a")
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as info:
        panoptic_script.main(["--root", str(tmp_path), "--workers", "1"])
    message = str(info.value.code)
    assert message.startswith("Error: 1 of 4 images failed and were skipped"), message
    # The image is the work item; the label PNG is the file that could not be read.
    assert str(ade / "images" / "training" / "a.jpg") in message, message
    assert f"{ade / 'annotations' / 'training' / 'a.png'}: cannot read the label PNG" in message
    train = json.loads((ade / "ade20k_panoptic_train.json").read_text())
    assert [image["id"] for image in train["images"]] == ["b", "c"]
    assert sorted(os.listdir(ade / "ade20k_panoptic_train")) == ["b.png", "c.png"]
    assert len(json.loads((ade / "ade20k_panoptic_val.json").read_text())["images"]) == 1
