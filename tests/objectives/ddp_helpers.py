"""Start CPU (gloo) worker processes for the multi-rank tests and wait for them with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import timedelta

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world: int, port: int) -> None:
    """Join the loopback gloo group of ``world`` ranks as ``rank``."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),
    )


def run_workers(worker: Callable, world: int, args: tuple, timeout_s: float = 60) -> None:
    """``worker(rank, port, *args)`` in ``world`` processes; raises if one fails or the deadline passes."""
    context = mp.spawn(worker, args=(free_port(), *args), nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            raise TimeoutError(f"DDP workers did not finish within {timeout_s}s")
