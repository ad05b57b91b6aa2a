"""Two gloo ranks share one queue and one label buffer: what each rank holds equals one process
that saw both ranks' batches (rank 0's keys first)."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import run_ranks

from zoo.methods.memory import LabelBuffer, MemoryQueue, gather_by_index

KEYS = torch.arange(30, dtype=torch.float32).reshape(15, 2)
SPLIT = {0: slice(0, 4), 1: slice(4, 9)}  # uneven batches: 4 and 5 keys
INDEX = {0: torch.tensor([5, 0, 2]), 1: torch.tensor([1, 4, 3, 5])}  # 5 twice: sampler padding


def _worker(rank: int, out_dir: str) -> None:
    queue = MemoryQueue(size=7, dim=2)
    queue.stage(KEYS[SPLIT[rank]])
    queue.flush()
    labels = LabelBuffer(6)
    labels.update(INDEX[rank], 10 * INDEX[rank])
    gathered = gather_by_index(INDEX[rank], value=INDEX[rank].float() / 2)
    torch.save(
        {"queue": queue.state_dict(), "labels": labels.labels, **gathered}, Path(out_dir) / f"{rank}.pt"
    )


def test_two_ranks_hold_the_same_queue_and_labels_as_one_process(tmp_path):
    run_ranks(_worker, str(tmp_path))
    single = MemoryQueue(size=7, dim=2)
    single.stage(KEYS[:9])  # rank 0's 4 keys, then rank 1's 5
    single.flush()
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        for name, value in single.state_dict().items():
            assert torch.equal(saved["queue"][name], value), (rank, name)
        assert saved["labels"][:, 0].tolist() == [0, 10, 20, 30, 40, 50]
        assert saved["index"].tolist() == [0, 1, 2, 3, 4, 5]
        assert saved["value"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
