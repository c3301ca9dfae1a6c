"""Disk full, file too large or an unwritable directory while saving a checkpoint: an OSError
naming the file and the reason, the previous checkpoint and ``last_checkpoint`` untouched
(issue 12, item 2)."""

from __future__ import annotations

import errno
import io
import os
import resource
import signal
import stat

import pytest
import torch
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.checkpoint.file_io import read_checkpoint


def _saved_once(save_dir) -> tuple[DetectionCheckpointer, bytes]:
    """A checkpointer that saved ``model_0000001.pth``; returns it and that file's bytes."""
    torch.manual_seed(0)
    checkpointer = DetectionCheckpointer(nn.Linear(64, 64), save_dir=str(save_dir))
    checkpointer.save("model_0000001", iteration=1)
    return checkpointer, (save_dir / "model_0000001.pth").read_bytes()


def _assert_nothing_lost(save_dir, first_bytes: bytes) -> None:
    assert (save_dir / "model_0000001.pth").read_bytes() == first_bytes
    assert (save_dir / "last_checkpoint").read_text() == "model_0000001.pth"
    assert read_checkpoint(str(save_dir / "model_0000001.pth"))["iteration"] == 1
    assert sorted(os.listdir(save_dir)) == ["last_checkpoint", "model_0000001.pth"]


class _FullDisk(io.FileIO):
    """A file on a disk with ``free`` bytes left: the write that needs more fails (ENOSPC)."""

    free = 0

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if size > _FullDisk.free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _FullDisk.free -= size
        return super().write(data)


def test_disk_full_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpointer, first_bytes = _saved_once(tmp_path)
    # Every file opened from a descriptor now sits on a disk with 1000 bytes left.
    _FullDisk.free = 1000
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: io.BufferedWriter(_FullDisk(fd, "wb")))
    with pytest.raises(OSError) as info:
        checkpointer.save("model_0000002", iteration=2)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert "No space left on device" in message, message
    assert str(tmp_path / "model_0000002.pth") in message, message
    _assert_nothing_lost(tmp_path, first_bytes)


def test_file_size_limit_is_reported_by_the_kernel_error(tmp_path):
    # RLIMIT_FSIZE makes the kernel refuse the write itself (EFBIG), also for root.
    checkpointer, first_bytes = _saved_once(tmp_path)
    limit = len(first_bytes) // 2
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        with pytest.raises(OSError) as info:
            checkpointer.save("model_0000002", iteration=2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert info.value.errno == errno.EFBIG
    message = str(info.value)
    assert "File too large" in message and str(tmp_path / "model_0000002.pth") in message, message
    _assert_nothing_lost(tmp_path, first_bytes)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_directory_names_the_file(tmp_path):
    checkpointer, first_bytes = _saved_once(tmp_path)
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError) as info:
            checkpointer.save("model_0000002", iteration=2)
    finally:
        tmp_path.chmod(stat.S_IRWXU)
    message = str(info.value)
    assert "Permission denied" in message and str(tmp_path / "model_0000002.pth") in message
    _assert_nothing_lost(tmp_path, first_bytes)
