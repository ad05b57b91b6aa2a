"""CMD's keyed InfoNCE: reference math on one process, and two gloo ranks against the single-process loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import run_ranks

from zoo.objectives.context_motion import keyed_info_nce_loss
from zoo.objectives.infonce import info_nce_loss


def _reference(query: torch.Tensor, keys: torch.Tensor, tau: float) -> float:
    """Row by row: -log(exp(q_i·k_i / τ) / Σ_j exp(q_i·k_j / τ)), averaged."""
    total = 0.0
    for i, q in enumerate(query.tolist()):
        scores = [sum(a * b for a, b in zip(q, k)) / tau for k in keys.tolist()]
        total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    return total / len(query)


def test_keyed_info_nce_matches_row_by_row_reference_with_extra_keys():
    torch.manual_seed(0)
    query = F.normalize(torch.randn(6, 5), dim=1)
    keys = F.normalize(torch.randn(15, 5), dim=1)  # 6 positives, then 9 hard negatives
    loss, accuracy = keyed_info_nce_loss(query, keys, 0.1, return_accuracy=True)
    assert loss.item() == pytest.approx(_reference(query, keys, 0.1), rel=1e-5)
    logits = query @ keys.T
    assert accuracy.item() == pytest.approx((logits.argmax(1) == torch.arange(6)).float().mean().item())


def test_without_extra_keys_it_is_one_directional_info_nce():
    torch.manual_seed(1)
    query, keys = torch.randn(4, 8), torch.randn(4, 8)
    ours = keyed_info_nce_loss(query, keys, 0.2, normalize=True)
    torch.testing.assert_close(ours, info_nce_loss(query, keys, 0.2))


def test_extra_keys_only_add_negatives():
    torch.manual_seed(2)
    query = F.normalize(torch.randn(3, 4), dim=1)
    keys = F.normalize(torch.randn(3, 4), dim=1)
    hard = F.normalize(torch.randn(6, 4), dim=1)
    assert keyed_info_nce_loss(query, torch.cat([keys, hard]), 0.1) > keyed_info_nce_loss(query, keys, 0.1)


def test_fewer_keys_than_queries_is_an_error():
    with pytest.raises(ValueError, match="positives first"):
        keyed_info_nce_loss(torch.randn(4, 3), torch.randn(3, 3))


def _two_rank_worker(rank: int, query: torch.Tensor, keys: torch.Tensor, expected: torch.Tensor) -> None:
    n, m = len(query) // 2, len(keys) // 2
    q = query[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    k = keys[rank * m : (rank + 1) * m].clone().requires_grad_(True)
    loss = keyed_info_nce_loss(q, k, 0.1, gather=True)
    torch.distributed.all_reduce(mean := loss.detach().clone())
    torch.testing.assert_close(mean / 2, expected["loss"])
    (loss / 2).backward()  # DDP's averaging of the per-rank losses
    torch.testing.assert_close(q.grad, expected["grad_q"][rank * n : (rank + 1) * n], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(k.grad, expected["grad_k"][rank * m : (rank + 1) * m], atol=1e-6, rtol=1e-5)


def test_two_ranks_give_the_loss_and_gradients_of_the_whole_batch():
    torch.manual_seed(3)
    query = F.normalize(torch.randn(4, 6), dim=1)
    keys = F.normalize(torch.randn(8, 6), dim=1)  # per rank: 2 positives + 2 hard negatives
    # the whole batch on one process: rank r's positives are keys[r·4 : r·4 + 2]
    q, k = query.clone().requires_grad_(True), keys.clone().requires_grad_(True)
    logits = q @ k.T / 0.1
    target = torch.tensor([0, 1, 4, 5])
    loss = F.cross_entropy(logits, target)
    loss.backward()
    expected = {"loss": loss.detach(), "grad_q": q.grad, "grad_k": k.grad}
    run_ranks(_two_rank_worker, query, keys, expected)
