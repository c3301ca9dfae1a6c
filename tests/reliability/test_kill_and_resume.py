"""A training process killed with SIGKILL, also inside a checkpoint write, leaves a loadable
``last_checkpoint``, and ``--resume`` reaches the weights of an uninterrupted run (issue 12,
item 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mask2former.checkpoint.file_io import read_checkpoint
from mask2former.data.datasets.demo_files import generate_demo_dataset
from tests.cli_helpers import REPO_ROOT, cli_env
from tests.tiny_config import BASE_CONFIG, tiny_opts

# Runs the training CLI; with $SLOW_WRITE_OF set, the checkpoint write of that file stalls in
# its fsync (after the content is written, before the rename) and announces it in a marker.
_RUNNER = """
import os, sys, time
real_fsync = os.fsync
def slow_fsync(fd):
    target = os.environ.get("SLOW_WRITE_OF")
    if target and os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(target):
        open(os.environ["SLOW_WRITE_MARKER"], "w").close()
        time.sleep(120)
    real_fsync(fd)
os.fsync = slow_fsync
from mask2former.engine.cli import main
main(sys.argv[1:])
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc"),
]


def _opts(output_dir) -> list[str]:
    return tiny_opts(
        **{
            "OUTPUT_DIR": str(output_dir),
            "SOLVER.MAX_ITER": 8,
            "SOLVER.IMS_PER_BATCH": 2,
            "SOLVER.CHECKPOINT_PERIOD": 3,
            "INPUT.MIN_SIZE_TRAIN": (64,),
            "INPUT.MAX_SIZE_TRAIN": 128,
            "INPUT.DATASET_MAPPER_NAME": "mask_former_panoptic",
            "TEST.EVAL_PERIOD": 0,
            "SEED": 7,  # the same initialisation and data order in every run
            "DATASETS.TEST": (),
        }
    )


def _start(tmp_path, output_dir, *extra_args: str, **env: str) -> subprocess.Popen:
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER)
    args = ["--config-file", BASE_CONFIG, *extra_args, *_opts(output_dir)]
    return subprocess.Popen(
        [sys.executable, str(runner), *args],
        cwd=REPO_ROOT,
        env=cli_env(DETECTRON2_DATASETS=str(tmp_path / "datasets"), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]


def _wait_for(path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _assert_loadable_last_checkpoint(output_dir) -> str:
    name = (output_dir / "last_checkpoint").read_text().strip()
    checkpoint = read_checkpoint(str(output_dir / name))
    assert {"model", "trainer", "iteration"} <= set(checkpoint)
    return name


def _final_weights(output_dir) -> dict[str, torch.Tensor]:
    return read_checkpoint(str(output_dir / "model_final.pth"))["model"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("kill")
    generate_demo_dataset(str(tmp_path / "datasets" / "demo_shapes"), num_train=6, num_val=1)
    _finish(_start(tmp_path, tmp_path / "full"))
    return tmp_path, _final_weights(tmp_path / "full")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []


def test_killed_inside_a_checkpoint_write(uninterrupted):
    tmp_path, expected = uninterrupted
    out, marker = tmp_path / "killed_in_write", tmp_path / "in_write"
    process = _start(
        tmp_path, out, SLOW_WRITE_OF=".model_0000005.pth.", SLOW_WRITE_MARKER=str(marker)
    )
    _wait_for(marker, process)
    _kill(process)
    # The interrupted write left only its temporary file; the previous checkpoint is intact.
    assert not (out / "model_0000005.pth").exists()
    assert any(f.startswith(".model_0000005.pth.") for f in os.listdir(out))
    assert _assert_loadable_last_checkpoint(out) == "model_0000002.pth"

    _finish(_start(tmp_path, out, "--resume"))
    assert not any(f.startswith(".model_0000005.pth.") for f in os.listdir(out))
    _assert_same_weights(_final_weights(out), expected)


def test_killed_during_training(uninterrupted):
    tmp_path, expected = uninterrupted
    out = tmp_path / "killed_during_training"
    process = _start(tmp_path, out)
    _wait_for(out / "last_checkpoint", process)
    time.sleep(0.5)  # somewhere in the iterations after the first checkpoint
    if process.poll() is None:
        _kill(process)
    name = _assert_loadable_last_checkpoint(out)
    assert name in {"model_0000002.pth", "model_0000005.pth", "model_final.pth"}

    _finish(_start(tmp_path, out, "--resume"))
    _assert_same_weights(_final_weights(out), expected)
