"""Large CPU result buffers recycled once their previous owner has let go of them.

Writing a fresh multi-hundred-megabyte tensor costs as much in page faults as in arithmetic:
the allocator maps new memory for every large tensor and the kernel zero-fills it page by
page on first touch (~0.3 ms per MB here, e.g. ~55 ms for the (133, 512, 683) float32 semantic
scores). Inference post-processing writes several such tensors per image (upsampled mask
logits, semantic scores, instance masks) and the caller usually drops them before the next
image. ``empty`` hands out a buffer of exactly the requested size from an earlier result whose
storage nobody references any more, so those pages are already mapped.

A buffer is reused only when the pool holds the sole reference to its storage (no tensor, view,
NumPy array or DLPack capsule of it is alive) and the storage is not shared with another process.
Free buffers not asked for during the last ``KEEP_ALLOCATIONS`` requests are released, and at
most ``MAX_FREE_BYTES`` of free buffers are kept. ``MASK2FORMER_BUFFER_POOL=0`` in the
environment, or ``set_enabled(False)``, turns recycling off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["MIN_BYTES", "clear", "empty", "enabled", "free_bytes", "set_enabled"]

# Smaller tensors come from the allocator's own reused heap anyway.
MIN_BYTES = 4 << 20
# Requests a free buffer may go unused before it is released (a few images' worth of results).
KEEP_ALLOCATIONS = 16
MAX_FREE_BYTES = 4 << 30

# The storage reference count is a private binding; without it nothing is recycled.
_use_count = getattr(torch._C, "_storage_Use_Count", None)


@dataclass
class _Entry:
    storage: torch.UntypedStorage
    nbytes: int
    last_request: int


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[_Entry] = []
        self.requests = 0
        self.enabled = os.environ.get("MASK2FORMER_BUFFER_POOL", "1") != "0"

    @staticmethod
    def is_free(entry: _Entry) -> bool:
        return _use_count(entry.storage._cdata) == 1 and not entry.storage.is_shared()

    def take(self, nbytes: int) -> torch.UntypedStorage | None:
        with self.lock:
            self.requests += 1
            found = None
            for entry in self.entries:
                if found is None and entry.nbytes == nbytes and self.is_free(entry):
                    entry.last_request = self.requests
                    found = entry.storage
            self.release_stale()
            return found

    def add(self, storage: torch.UntypedStorage) -> None:
        with self.lock:
            self.entries.append(_Entry(storage, storage.nbytes(), self.requests))

    def release_stale(self) -> None:
        oldest_kept = self.requests - KEEP_ALLOCATIONS
        kept, free = [], 0
        # Newest first, so that the byte cap drops the oldest free buffers.
        for entry in sorted(self.entries, key=lambda e: e.last_request, reverse=True):
            if self.is_free(entry):
                if entry.last_request < oldest_kept or free + entry.nbytes > MAX_FREE_BYTES:
                    continue
                free += entry.nbytes
            kept.append(entry)
        self.entries = kept


_POOL = _Pool()


def empty(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """An uninitialised contiguous tensor, in a recycled buffer when one of exactly this size
    is free (CPU tensors of at least ``MIN_BYTES`` only; otherwise ``torch.empty``)."""
    device = torch.device(device)
    shape = tuple(int(side) for side in shape)
    numel = 1
    for side in shape:
        numel *= side
    nbytes = numel * dtype.itemsize
    if device.type != "cpu" or nbytes < MIN_BYTES or not _POOL.enabled or _use_count is None:
        return torch.empty(shape, dtype=dtype, device=device)
    storage = _POOL.take(nbytes)
    if storage is None:
        tensor = torch.empty(shape, dtype=dtype, device=device)
        _POOL.add(tensor.untyped_storage())
        return tensor
    return torch.empty(0, dtype=dtype, device=device).set_(storage, 0, shape)


def set_enabled(value: bool) -> None:
    """Turn recycling on or off (off also releases the free buffers)."""
    _POOL.enabled = bool(value)
    if not value:
        clear()


def enabled() -> bool:
    """Whether ``empty`` recycles buffers."""
    return _POOL.enabled and _use_count is not None


def clear() -> None:
    """Release every buffer the pool holds (tensors still in use stay valid)."""
    with _POOL.lock:
        _POOL.entries = []


def free_bytes() -> int:
    """Bytes held in buffers that nobody else references."""
    with _POOL.lock:
        return sum(entry.nbytes for entry in _POOL.entries if _POOL.is_free(entry))
