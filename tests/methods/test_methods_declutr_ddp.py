"""DeCLUTR's contrastive term on two gloo ranks: anchors and positives of both ranks are candidates, and the
loss and the (DDP-averaged) gradients equal one process's over the whole batch (the original's scale fix)."""

from __future__ import annotations

import pytest
import torch
from helpers import run_ranks

from zoo.methods.declutr import declutr_contrastive_loss


def _gathered_worker(rank: int, path: str) -> None:
    data = torch.load(path)
    model = torch.nn.Linear(8, 6, dtype=torch.float64)
    model.load_state_dict(data["weights"])
    half = slice(rank * 3, rank * 3 + 3)
    loss = declutr_contrastive_loss(model(data["a"][half]), model(data["p"][half]), 0.05, gather=True)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    for g in grads:
        torch.distributed.all_reduce(g)
        g /= 2  # DDP averages gradients over ranks
    all_losses = [torch.zeros(()) for _ in range(2)]
    torch.distributed.all_gather(all_losses, loss.detach().float())
    torch.save({"loss": sum(all_losses) / 2, "grads": grads}, f"{path}.{rank}")


def test_two_ranks_gather_anchors_and_positives_like_one_process(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 6, dtype=torch.float64)
    a, p = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 2, 8, dtype=torch.float64)
    path = tmp_path / "data.pt"
    torch.save({"weights": model.state_dict(), "a": a, "p": p}, path)
    loss = declutr_contrastive_loss(model(a), model(p), 0.05)
    loss.backward()
    run_ranks(_gathered_worker, str(path), timeout_s=240)
    for rank in range(2):
        out = torch.load(f"{path}.{rank}")
        assert out["loss"].item() == pytest.approx(loss.item(), rel=1e-6)
        for got, param in zip(out["grads"], model.parameters()):
            torch.testing.assert_close(got, param.grad)
