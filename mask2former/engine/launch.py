"""Start single- or multi-process (DDP) jobs through ``torch.distributed``.

Three ways in: ``launch(..., num_gpus_per_machine=N)`` spawns N local processes (NCCL when
CUDA is available, gloo on CPU); ``--num-machines/--machine-rank/--dist-url`` join a
multi-node job; under ``torchrun`` the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``...) is used and nothing is spawned.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mask2former.utils import comm

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)


def find_free_port() -> int:
    """A TCP port that was free on localhost a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def default_backend() -> str:
    """NCCL when CUDA is available, gloo otherwise."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another env:// launcher) started this process."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> Any:
    """Run ``main_func(*args)`` in every process of the job.

    Args:
        main_func: the per-process entry point.
        num_gpus_per_machine: processes per machine (GPUs on CUDA machines, CPU processes
            with gloo otherwise).
        num_machines: machines in the job.
        machine_rank: this machine's index.
        dist_url: rendezvous URL such as "tcp://10.0.0.1:29500"; "auto" picks a free local
            port (single machine only).
        args: arguments of ``main_func``.
        timeout: timeout of the collectives.

    Returns:
        ``main_func``'s result in a single process or under torchrun; None after spawning.
    """
    if launched_by_torchrun():
        return _torchrun_worker(main_func, args, timeout)
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError(
                f"--dist-url must name the rank-0 machine (tcp://HOST:PORT) when "
                f"--num-machines is {num_machines}; got {dist_url!r}"
            )
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine} exceeds the {torch.cuda.device_count()} "
            "visible CUDA devices"
        )
    mp.start_processes(
        _spawned_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )
    return None


def _shutdown() -> None:
    # Rank 0 hosts the rendezvous store: tearing it down while another rank still uses it
    # can abort that rank, so all ranks leave together.
    comm.synchronize()
    dist.destroy_process_group()


def _setup_device(local_rank: int) -> None:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)


def _spawned_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: timedelta,
) -> None:
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    _setup_device(local_rank)
    try:
        dist.init_process_group(
            backend=default_backend(),
            init_method=dist_url,
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
        )
    except Exception as e:
        raise RuntimeError(f"Process group URL {dist_url!r} failed (rank {global_rank})") from e
    comm.set_local_rank(local_rank, num_gpus_per_machine)
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        _shutdown()


def _torchrun_worker(main_func: Callable[..., Any], args: tuple, timeout: timedelta) -> Any:
    local_rank = int(os.environ["LOCAL_RANK"])
    _setup_device(local_rank)
    dist.init_process_group(backend=default_backend(), init_method="env://", timeout=timeout)
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    comm.set_local_rank(local_rank, local_size)
    comm.synchronize()
    try:
        return main_func(*args)
    finally:
        _shutdown()
