"""The caching CPU allocator reuses freed large blocks inside scopes, and only there."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from mask2former.utils import cpu_caching
from tests.optional import unavailable

BIG = 3 << 20  # float32 elements: 12 MB


@pytest.fixture(autouse=True)
def built_allocator():
    if not cpu_caching.available():
        unavailable("the caching CPU allocator could not be built (C++ compiler)", ci_has_it=True)
    cpu_caching.empty_cache()
    yield
    cpu_caching.empty_cache()


def test_freed_block_is_reused_inside_a_scope_only():
    with cpu_caching.caching():
        first = torch.empty(BIG)
        pointer = first.data_ptr()
        del first
        assert cpu_caching.cached_bytes() >= BIG * 4
        # A request up to an eighth smaller takes the same block.
        again = torch.empty(BIG - BIG // 10)
        assert again.data_ptr() == pointer
        del again
    outside = torch.empty(BIG)
    assert outside.data_ptr() != pointer
    assert cpu_caching.cached_bytes() >= BIG * 4  # still cached for the next scope


def test_live_and_referenced_blocks_are_never_handed_out():
    with cpu_caching.caching():
        first = torch.empty(BIG).fill_(7.0)
        view, array = first[5:10], first.numpy()
        pointer = first.data_ptr()
        del first
        second = torch.empty(BIG).fill_(-1.0)
        assert second.data_ptr() != pointer
        assert bool((view == 7.0).all()) and np.all(array == 7.0)


def test_small_tensors_and_other_threads_allocate_as_usual():
    with cpu_caching.caching():
        small = torch.empty(1000)
        del small
        assert cpu_caching.cached_bytes() == 0
        pointers = []

        def other_thread():
            block = torch.empty(BIG)
            pointers.append(block.data_ptr())

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert cpu_caching.cached_bytes() == 0  # its block went back to the system


def test_limit_and_empty_cache():
    try:
        cpu_caching.set_limit(BIG * 4)
        with cpu_caching.caching():
            blocks = [torch.empty(BIG) for _ in range(3)]
            del blocks
        assert cpu_caching.cached_bytes() <= BIG * 4 + (1 << 16)
    finally:
        cpu_caching.set_limit(4 << 30)
    assert cpu_caching.empty_cache() > 0
    assert cpu_caching.cached_bytes() == 0


def test_blocks_unused_for_several_scopes_are_released():
    with cpu_caching.caching():
        block = torch.empty(BIG)
        del block
    assert cpu_caching.cached_bytes() > 0
    for _ in range(5):
        with cpu_caching.caching():
            pass
    assert cpu_caching.cached_bytes() == 0


def test_results_do_not_depend_on_the_cache():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, 96, generator=generator)
    conv = torch.nn.Conv1d(256, 256, 3, padding=1)
    plain = conv(x).detach()
    for _ in range(2):
        with torch.no_grad(), cpu_caching.caching():
            assert torch.equal(conv(x), plain)


def test_environment_switch_turns_the_scopes_off():
    code = (
        "import torch\n"
        "from mask2former.utils import cpu_caching\n"
        "with cpu_caching.caching():\n"
        "    block = torch.empty(1 << 22)\n"
        "    del block\n"
        "print(cpu_caching.available(), cpu_caching.cached_bytes())\n"
    )
    env = {**os.environ, "MASK2FORMER_CPU_CACHE": "0"}
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "0"]
