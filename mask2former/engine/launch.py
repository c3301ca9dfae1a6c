"""Start single- or multi-process (DDP) jobs through ``torch.distributed``.

Three ways in: ``launch(..., num_gpus_per_machine=N)`` spawns N local processes (NCCL when
CUDA is available, gloo on CPU); ``--num-machines/--machine-rank/--dist-url`` join a
multi-node job; under ``torchrun`` the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``...) is used and nothing is spawned.

A rank that dies or hangs must not leave the others waiting forever: every collective waits at
most ``timeout`` (``--dist-timeout``), a rank whose collective fails stops with a
:class:`DistributedJobError` naming the collective failure and the timeout, and the launcher
stops the other local processes and reports which rank failed and how.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mask2former.utils import comm

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)  # detectron2's default for its collectives
# After one local process failed, how long the others get to stop on their own (they usually
# fail at once, their peer gone) before the launcher terminates them, then kills them.
_GRACE_PERIOD_S = 5.0
# Words of the errors that gloo and NCCL raise when a peer vanished or a collective timed out
# (a plain RuntimeError in torch 2.x for gloo; ``dist.DistError`` subclasses otherwise).
_BACKEND_ERROR_MARKERS = ("gloo", "NCCL", "Connection reset by peer", "Connection closed by peer")


class DistributedJobError(RuntimeError):
    """A process of a multi-process job failed: it raised, was killed, or lost its peers."""


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
        timeout: how long a collective (and the rendezvous) waits for the other ranks.

    Returns:
        ``main_func``'s result in a single process or under torchrun; None after spawning.

    Raises:
        DistributedJobError: a spawned process raised, was killed or lost its peers; the
            other local processes were stopped.
    """
    if launched_by_torchrun():
        return _torchrun_worker(main_func, args, timeout)
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    store_server = None
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError(
                f"--dist-url must name the rank-0 machine (tcp://HOST:PORT) when "
                f"--num-machines is {num_machines}; got {dist_url!r}"
            )
        port = find_free_port()
        dist_url = f"tcp://127.0.0.1:{port}"
        # The launcher hosts the rendezvous store, so that it outlives every rank: hosted by
        # rank 0, it vanished when rank 0 exited while another rank was still leaving the
        # group, and that rank could abort ("terminate called without an active exception").
        store_server = dist.TCPStore(
            "127.0.0.1", port, is_master=True, timeout=timeout, wait_for_workers=False
        )
    if torch.cuda.is_available() and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine} exceeds the {torch.cuda.device_count()} "
            "visible CUDA devices"
        )
    context = mp.start_processes(
        _spawned_worker,
        nprocs=num_gpus_per_machine,
        args=(
            main_func,
            world_size,
            num_gpus_per_machine,
            machine_rank,
            dist_url,
            args,
            timeout,
            store_server is not None,
        ),
        daemon=False,
        start_method="spawn",
        join=False,
    )
    try:
        while not context.join(grace_period=_GRACE_PERIOD_S):
            pass
    except mp.ProcessExitedException as e:
        rank = machine_rank * num_gpus_per_machine + e.error_index
        how = f"signal {e.signal_name}" if e.signal_name else f"exit code {e.exit_code}"
        raise DistributedJobError(
            f"Rank {rank} of {world_size} (pid {e.error_pid}) ended with {how}; the other "
            "processes of this machine were stopped"
        ) from e
    except mp.ProcessRaisedException as e:
        rank = machine_rank * num_gpus_per_machine + e.error_index
        # The message is the child's traceback; its last line is the error itself, where the
        # class's module path ("pkg.mod.Error: ...") says nothing the class name does not.
        last_line = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", e.msg.strip().splitlines()[-1])
        raise DistributedJobError(
            f"Rank {rank} of {world_size} failed, the other processes of this machine were "
            f"stopped: {last_line}"
        ) from e
    return None


def _run_and_shutdown(main_func: Callable[..., Any], args: tuple, timeout: timedelta) -> Any:
    """Run ``main_func(*args)`` once all ranks of the process group are up; leave the group
    after it.

    A collective that fails (a peer died, or did not answer within ``timeout``) becomes a
    :class:`DistributedJobError`. After any failure the process leaves without the closing
    barrier, which would wait another ``timeout`` for ranks that are gone.
    """
    try:
        comm.synchronize()  # every rank is up before the job starts
        result = main_func(*args)
    except RuntimeError as e:
        if not _is_backend_failure(e):
            raise
        rank, world_size = dist.get_rank(), dist.get_world_size()
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedJobError(
            f"Rank {rank} of {world_size}: a collective operation failed; another rank died "
            f"or did not answer within the collective timeout of {timeout.total_seconds():g} s "
            f"(--dist-timeout). Look at the other ranks' logs. Backend error: {detail}"
        ) from e
    # Rank 0 hosts the rendezvous store: tearing it down while another rank still uses it
    # can abort that rank, so all ranks leave together.
    comm.synchronize()
    dist.destroy_process_group()
    return result


def _is_backend_failure(error: RuntimeError) -> bool:
    """Whether ``error`` comes from the communication backend (peer lost, timeout)."""
    if isinstance(error, dist.DistError):
        return True
    message = str(error)
    return any(marker in message for marker in _BACKEND_ERROR_MARKERS)


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
    launcher_hosts_store: bool = False,
) -> None:
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    _setup_device(local_rank)
    try:
        if launcher_hosts_store:
            host, port = dist_url.removeprefix("tcp://").rsplit(":", 1)
            store = dist.TCPStore(host, int(port), is_master=False, timeout=timeout)
            rendezvous: dict[str, Any] = {"store": store}
        else:
            rendezvous = {"init_method": dist_url}
        dist.init_process_group(
            backend=default_backend(),
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
            **rendezvous,
        )
    except Exception as e:
        raise DistributedJobError(
            f"Rank {global_rank} of {world_size} could not join the process group at "
            f"{dist_url!r} (the other ranks must join within {timeout.total_seconds():g} s, "
            f"--dist-timeout): {e}"
        ) from e
    comm.set_local_rank(local_rank, num_gpus_per_machine)
    _run_and_shutdown(main_func, args, timeout)


def _torchrun_worker(main_func: Callable[..., Any], args: tuple, timeout: timedelta) -> Any:
    local_rank = int(os.environ["LOCAL_RANK"])
    _setup_device(local_rank)
    dist.init_process_group(backend=default_backend(), init_method="env://", timeout=timeout)
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    comm.set_local_rank(local_rank, local_size)
    return _run_and_shutdown(main_func, args, timeout)
