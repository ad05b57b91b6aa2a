"""Two CPU ranks (gloo) with half the batch each give the SwAV codes of one process with the whole batch.

Each rank solves Sinkhorn on its own rows with the sums over samples all-reduced; the rows it gets
back are its slice of the single-process codes (float64, tolerance 1e-12), in the exponential and the
log domain, with a non-uniform sample marginal. ``distributed=False`` solves each half alone instead.
The SeLa form runs on each rank over the gathered dataset and gives every rank the same labels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import run_ranks

from zoo.objectives.sinkhorn import sinkhorn, sinkhorn_knopp, sinkhorn_swav

WORLD = 2
BATCH = 10


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "scores": torch.tanh(torch.randn(BATCH, 4, generator=g, dtype=torch.float64)),
        "weights": torch.rand(BATCH, generator=g, dtype=torch.float64) + 0.5,
        "clusters": torch.tensor([1.0, 2.0, 1.0, 3.0], dtype=torch.float64),
    }


def _codes(data: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    scores, weights, clusters = data["scores"][rows], data["weights"][rows], data["clusters"]
    return {
        "exp": sinkhorn_swav(scores, 0.1, 3, sample_marginal=weights, cluster_marginal=clusters),
        "log": sinkhorn_swav(
            scores, 0.1, 3, sample_marginal=weights, cluster_marginal=clusters, log_domain=True
        ),
        "local": sinkhorn(scores / 0.1, 3, distributed=False),
    }


def _self_labels(data: dict[str, torch.Tensor]) -> torch.Tensor:
    probs = torch.softmax(data["scores"] * 4, dim=1)
    return sinkhorn_knopp(probs, 20, cluster_marginal=data["clusters"]).labels


def _worker(rank: int, out_dir: str) -> None:
    half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    codes = _codes(_data(), half)
    codes["sela"] = _self_labels(_data())  # every rank holds the gathered dataset (SeLaVi's passes)
    torch.save(codes, Path(out_dir) / f"rank{rank}.pt")


def test_two_ranks_equal_one_process(tmp_path):
    run_ranks(_worker, str(tmp_path), world=WORLD)
    data = _data()
    whole = _codes(data, slice(None))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
    for name in ("exp", "log"):
        joined = torch.cat([codes[name] for codes in ranks])
        assert torch.allclose(joined, whole[name], atol=1e-12, rtol=1e-10), name
    joint = sinkhorn(data["scores"] / 0.1, 3)  # uniform marginals, balanced over the whole batch
    for rank, codes in enumerate(ranks):
        half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        alone = sinkhorn(data["scores"][half] / 0.1, 3)
        assert torch.allclose(codes["local"], alone, atol=1e-12, rtol=1e-10)
        assert not torch.allclose(codes["local"], joint[half], atol=1e-3)
        assert torch.equal(codes["sela"], _self_labels(data))  # the local SeLa solve runs on every rank
