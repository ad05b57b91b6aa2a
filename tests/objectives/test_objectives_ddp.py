"""Two CPU ranks (gloo) with B/2 each give the loss and encoder gradients of one process with B.

Each rank wraps the same linear encoder in DistributedDataParallel (gradients averaged over ranks),
computes its loss on its own anchors against candidates gathered with ``gather_with_grad``; the
per-rank losses average to the single-process loss and the DDP gradients equal the single-process
gradients (float64, tolerance 1e-10).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from ddp_helpers import init_gloo, run_workers
from torch import nn

from zoo.objectives.distributed import gather_no_grad, get_rank, get_world_size
from zoo.objectives.infonce import cross_modal_info_nce_loss, nt_xent_loss

WORLD = 2
BATCH = 6
TIMEOUT_S = 60


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "views": torch.randn(BATCH, 2, 5, generator=g, dtype=torch.float64),
        "audio": torch.randn(BATCH, 5, generator=g, dtype=torch.float64),
        "indexes": torch.tensor([0, 1, 2, 0, 4, 2]),  # extra positives across the two ranks' halves
        "mask": torch.rand(BATCH, BATCH, generator=g) > 0.7,
    }


def _encoder() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(5, 4, dtype=torch.float64)


def _losses(encoder: nn.Module, views, audio, indexes, mask, gather: bool) -> dict[str, torch.Tensor]:
    z = encoder(views)  # (N, 2, 4)
    za = encoder(audio)  # (N, 4)
    return {
        "nt_xent": nt_xent_loss(z, 0.3, gather=gather),
        "nt_xent_indexes": nt_xent_loss(z, 0.3, indexes=indexes, gather=gather, view_reduction="sum"),
        "cross_modal": cross_modal_info_nce_loss(z[:, 0], za, 0.2, positive_mask=mask, gather=gather),
    }


def _worker(rank: int, port: int, out_dir: str) -> None:
    init_gloo(rank, WORLD, port)
    torch.set_num_threads(1)
    assert get_rank() == rank and get_world_size() == WORLD
    data = _data()
    half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    model = nn.parallel.DistributedDataParallel(_encoder())
    result = {}
    for name in ("nt_xent", "nt_xent_indexes", "cross_modal"):
        model.zero_grad()
        loss = _losses(
            model, data["views"][half], data["audio"][half], data["indexes"][half], data["mask"][half], True
        )[name]
        loss.backward()  # DDP averages the gradients over ranks
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        result[name] = (mean_loss / WORLD, model.module.weight.grad.clone(), model.module.bias.grad.clone())
    result["gathered"] = gather_no_grad(data["indexes"][half])
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path):
    run_workers(_worker, WORLD, (str(tmp_path),), TIMEOUT_S)

    data = _data()
    encoder = _encoder()
    for name in ("nt_xent", "nt_xent_indexes", "cross_modal"):
        encoder.zero_grad()
        loss = _losses(encoder, data["views"], data["audio"], data["indexes"], data["mask"], False)[name]
        loss.backward()
        for rank in range(WORLD):
            dist_loss, grad_w, grad_b = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)[name]
            assert torch.allclose(dist_loss, loss.detach(), atol=1e-10, rtol=1e-10), name
            assert torch.allclose(grad_w, encoder.weight.grad, atol=1e-10, rtol=1e-10), name
            assert torch.allclose(grad_b, encoder.bias.grad, atol=1e-10, rtol=1e-10), name
    gathered = torch.load(tmp_path / "rank1.pt", weights_only=True)["gathered"]
    assert torch.equal(gathered, data["indexes"])
