"""The demo dataset's generation lock: portable (no fcntl import) and held while generating."""

import os
import subprocess
import sys

import filelock
import pytest

from mask2former.data.datasets import demo_files as demo_dataset
from tests.cli_helpers import REPO_ROOT, cli_env

# fcntl missing, as on Windows. iopath's and filelock's locks choose fcntl or msvcrt by
# platform themselves, so they are imported first; anything of ours importing fcntl fails.
BLOCK_FCNTL = "import iopath.common.file_io, filelock, sys\nsys.modules['fcntl'] = None\n"


def test_import_works_without_fcntl():
    code = BLOCK_FCNTL + "import mask2former.data.datasets.demo_files\nprint('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_generation_holds_the_lock_and_runs_once(tmp_path, monkeypatch):
    root = str(tmp_path / "demo_shapes")
    calls = []

    def fake_generate(path):
        # Another process (another lock object on the same file) must wait.
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(path + ".lock", timeout=0).acquire()
        os.makedirs(path)
        open(os.path.join(path, demo_dataset.DONE_MARKER), "w").close()
        calls.append(path)

    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", fake_generate)
    assert demo_dataset.ensure_demo_dataset(root) == root
    assert demo_dataset.ensure_demo_dataset(root) == root
    assert calls == [root]
    with filelock.FileLock(root + ".lock", timeout=0):  # released afterwards
        pass
