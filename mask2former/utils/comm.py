"""Helpers for multi-process (``torch.distributed``) training and evaluation.

Every function also works without an initialized process group (a single process), in
which case it behaves as if the world had one rank. Object collectives run on a gloo group
so that they work for CPU objects under both the gloo and the NCCL backends.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

_LOCAL_RANK: int | None = None
_LOCAL_SIZE: int | None = None


def set_local_rank(local_rank: int, local_size: int) -> None:
    """Record this process's rank and the number of processes on its machine (the launcher
    calls this; torchrun's ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` are read otherwise)."""
    global _LOCAL_RANK, _LOCAL_SIZE
    _LOCAL_RANK, _LOCAL_SIZE = int(local_rank), int(local_size)


def is_dist_initialized() -> bool:
    """Whether a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 without distributed)."""
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without distributed)."""
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process among the processes of its machine."""
    if not is_dist_initialized():
        return 0
    if _LOCAL_RANK is not None:
        return _LOCAL_RANK
    return int(os.environ.get("LOCAL_RANK", 0))


def get_local_size() -> int:
    """Number of processes on this machine."""
    if not is_dist_initialized():
        return 1
    if _LOCAL_SIZE is not None:
        return _LOCAL_SIZE
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    """Whether this is global rank 0 (the only rank that writes files)."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op with a single process."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache
def _gloo_group() -> dist.ProcessGroup:
    """A gloo group over all ranks (the default group itself when it is gloo)."""
    if dist.get_backend() == dist.Backend.GLOO:
        return dist.group.WORLD
    return dist.new_group(backend="gloo")


def all_gather(data: Any, group: dist.ProcessGroup | None = None) -> list[Any]:
    """Gather any picklable object from every rank.

    Args:
        data: the object of this rank.
        group: process group; defaults to a gloo group over all ranks.

    Returns:
        One object per rank of the group, in rank order.
    """
    if get_world_size() == 1:
        return [data]
    group = group if group is not None else _gloo_group()
    world_size = dist.get_world_size(group=group)
    if world_size == 1:
        return [data]
    output: list[Any] = [None] * world_size
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data: Any, dst: int = 0, group: dist.ProcessGroup | None = None) -> list[Any]:
    """Gather any picklable object on rank ``dst``.

    Returns:
        On ``dst``: one object per rank in rank order; on other ranks: an empty list.
    """
    if get_world_size() == 1:
        return [data]
    group = group if group is not None else _gloo_group()
    world_size = dist.get_world_size(group=group)
    if world_size == 1:
        return [data]
    if dist.get_rank(group=group) == dst:
        output: list[Any] = [None] * world_size
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict[str, Any]:
    """Sum (or average) scalar tensors over all ranks; the result is valid on rank 0.

    Args:
        input_dict: name -> scalar tensor; every rank must pass the same keys.
        average: divide the sum by the world size.
    """
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())
        values = torch.stack([input_dict[k].detach().reshape(()) for k in names])
        dist.reduce(values, dst=0)
        if dist.get_rank() == 0 and average:
            values /= world_size
        return dict(zip(names, values))


def shared_random_seed() -> int:
    """A random integer in [0, 2**31) that is the same on all ranks (rank 0's draw)."""
    seed = int(np.random.randint(2**31))
    return all_gather(seed)[0]
