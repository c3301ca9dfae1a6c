"""Inference on a caching CPU allocator: large temporaries reuse memory that is already mapped.

PyTorch's CPU allocator gives every large tensor freshly mapped memory, which the kernel
zero-fills page by page on first touch. One Mask2Former forward at 800x1333 maps ~1.5 GB
that way, a few hundred milliseconds on a 2-core machine; at 512x683 the post-processing's
(K, H, W) semantic scores alone cost ~55 ms in page faults. ``caching()`` scopes (entered by
the model's inference paths) serve blocks of 1 MB and more from a cache of freed blocks
instead (``csrc/cpu_memory/caching_allocator.cpp``, built on first use like the MSDA
kernels). Outside a scope, and in other threads, allocation is PyTorch's own.

The cache keeps at most ``set_limit`` bytes (default 4 GiB) of free blocks and releases
blocks not reused during the last four scopes; ``empty_cache()`` releases them all.
``MASK2FORMER_CPU_CACHE=0`` turns the scopes into no-ops. Results are unaffected: this only
changes where tensors live (tests/utils/test_cpu_caching.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mask2former.utils.shipped_files import shipped_path

__all__ = ["available", "cached_bytes", "caching", "empty_cache", "set_limit"]

logger = logging.getLogger(__name__)

_SOURCE = "csrc/cpu_memory/caching_allocator.cpp"
_lock = threading.Lock()
_state: dict[str, bool] = {}


def _enabled_by_environment() -> bool:
    return os.environ.get("MASK2FORMER_CPU_CACHE", "1") != "0"


def _load() -> bool:
    source = shipped_path(_SOURCE)
    if source is None:
        logger.info("CPU caching allocator: %s not found; allocating as usual", _SOURCE)
        return False
    try:
        if not hasattr(torch.ops.mask2former_memory, "install"):
            from torch.utils.cpp_extension import load

            logger.info("Building the caching CPU allocator; cached after the first use")
            load(
                name="mask2former_cpu_memory",
                sources=[str(source)],
                extra_cflags=["-O2"],
                is_python_module=False,
                verbose=False,
            )
        installed = bool(torch.ops.mask2former_memory.install())
    except (RuntimeError, OSError, ImportError) as error:
        logger.info("CPU caching allocator unavailable (%s); allocating as usual", error)
        return False
    if not installed:
        logger.info("CPU caching allocator: another CPU allocator has priority; not used")
    return installed


def available() -> bool:
    """Whether the caching allocator is built and installed (builds it on the first call)."""
    if not _enabled_by_environment():
        return False
    with _lock:
        if "loaded" not in _state:
            _state["loaded"] = _load()
        return _state["loaded"]


def _ops():
    return torch.ops.mask2former_memory


@contextmanager
def caching(device: torch.device | str = "cpu") -> Iterator[None]:
    """Within the block, this thread's CPU allocations of 1 MB and more come from the cache.

    A no-op for other devices, with ``MASK2FORMER_CPU_CACHE=0``, or when the allocator could
    not be built. Scopes nest.
    """
    if torch.device(device).type != "cpu" or not available():
        yield
        return
    _ops().enter()
    try:
        yield
    finally:
        _ops().leave()


def empty_cache() -> int:
    """Release every cached free block; returns the bytes released."""
    return int(_ops().empty_cache()) if available() else 0


def cached_bytes() -> int:
    """Bytes held in free cached blocks."""
    return int(_ops().cached_bytes()) if available() else 0


def set_limit(limit_bytes: int) -> None:
    """Keep at most ``limit_bytes`` of free blocks (0: cache nothing)."""
    if available():
        _ops().set_limit(int(limit_bytes))
