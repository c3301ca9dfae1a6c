"""The buffer pool recycles a large tensor's memory only once nothing else references it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mask2former.utils import buffer_pool

SIZE = (1 << 20) + 3  # float32 elements: 4 MB and a bit, above MIN_BYTES


@pytest.fixture(autouse=True)
def fresh_pool():
    buffer_pool.clear()
    buffer_pool.set_enabled(True)
    yield
    buffer_pool.clear()
    buffer_pool.set_enabled(True)


def test_released_buffer_is_reused_for_the_same_size_only():
    first = buffer_pool.empty((SIZE,), torch.float32)
    pointer = first.data_ptr()
    del first
    assert buffer_pool.free_bytes() == SIZE * 4
    other_size = buffer_pool.empty((SIZE + 1,), torch.float32)
    assert other_size.data_ptr() != pointer
    # Any dtype and shape of the same byte size: an (N, 4) bool view of the float buffer.
    again = buffer_pool.empty((SIZE, 4), torch.bool)
    assert again.data_ptr() == pointer
    assert again.shape == (SIZE, 4) and again.dtype == torch.bool and again.is_contiguous()


@pytest.mark.parametrize("holder", ["tensor", "view", "numpy", "dlpack"])
def test_referenced_buffer_is_not_reused(holder):
    first = buffer_pool.empty((SIZE,), torch.float32)
    first.fill_(7.0)
    pointer = first.data_ptr()
    kept = {
        "tensor": lambda t: t,
        "view": lambda t: t[10:20],
        "numpy": lambda t: t.numpy(),
        "dlpack": lambda t: torch.utils.dlpack.to_dlpack(t),
    }[holder](first)
    del first
    second = buffer_pool.empty((SIZE,), torch.float32)
    second.fill_(-1.0)
    assert second.data_ptr() != pointer
    if holder == "numpy":
        assert np.all(kept == 7.0)
    elif holder != "dlpack":
        assert bool((kept == 7.0).all())


def test_shared_memory_buffer_is_not_reused():
    first = buffer_pool.empty((SIZE,), torch.float32)
    first.share_memory_()
    pointer = first.data_ptr()
    del first
    assert buffer_pool.empty((SIZE,), torch.float32).data_ptr() != pointer


def test_small_tensors_and_disabled_pool_are_plain_allocations():
    small = buffer_pool.empty((16,), torch.float32)
    del small
    assert buffer_pool.free_bytes() == 0
    buffer_pool.set_enabled(False)
    assert not buffer_pool.enabled()
    big = buffer_pool.empty((SIZE,), torch.float32)
    del big
    assert buffer_pool.free_bytes() == 0


def test_buffers_not_asked_for_are_released():
    first = buffer_pool.empty((SIZE,), torch.float32)
    del first
    for extra in range(buffer_pool.KEEP_ALLOCATIONS + 1):
        buffer_pool.empty((SIZE + 1 + extra,), torch.float32)
    # Only the buffers of the most recent requests are kept.
    assert buffer_pool.free_bytes() <= sum(
        (SIZE + 1 + extra) * 4 for extra in range(buffer_pool.KEEP_ALLOCATIONS + 1)
    )
    assert all(entry.nbytes != SIZE * 4 for entry in buffer_pool._POOL.entries), (
        "the stale buffer of the first size is still held"
    )


def test_free_bytes_are_capped(monkeypatch):
    monkeypatch.setattr(buffer_pool, "MAX_FREE_BYTES", 3 * SIZE * 4)
    for extra in range(6):
        buffer_pool.empty((SIZE + extra,), torch.float32)
    assert buffer_pool.free_bytes() <= 3 * (SIZE + 5) * 4


def test_environment_switch_turns_recycling_off():
    code = (
        "import torch\n"
        "from mask2former.utils import buffer_pool\n"
        "a = buffer_pool.empty((1 << 21,), torch.float32)\n"
        "del a\n"
        "print(buffer_pool.enabled(), buffer_pool.free_bytes())\n"
    )
    env = {**os.environ, "MASK2FORMER_BUFFER_POOL": "0"}
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "0"]
