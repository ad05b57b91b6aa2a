"""Helpers shared by the tests: running a function on several gloo ranks on this machine."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, worker: Callable[..., None], args: tuple[Any, ...]) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),
    )
    torch.set_num_threads(1)
    try:
        worker(rank, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(worker: Callable[..., None], *args: Any, world: int = 2, timeout_s: float = 60) -> None:
    """Run ``worker(rank, *args)`` on ``world`` CPU processes in one gloo group; fail after ``timeout_s``.

    ``worker`` must be a module-level function (it is pickled into the spawned processes).
    """
    context = mp.spawn(_rank_main, args=(world, free_port(), worker, args), nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            raise TimeoutError(f"{world} gloo workers did not finish within {timeout_s}s")
