"""Ranking losses against one-anchor-at-a-time loops written from the papers' formulas (float64).

Parity with the released ``vsepp`` ``ContrastiveLoss`` and ``deep-person-reid`` ``TripletLoss`` was
measured separately on CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.objectives.ranking import (
    batch_hard_triplet_loss,
    max_margin_ranking_loss,
    pairwise_euclidean_distance,
)

TOL = dict(atol=1e-12, rtol=1e-10)


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def loop_batch_hard(x, labels, margin, squared=False):
    """mean over anchors with a positive and a negative of [m + max_p D − min_n D]_+ (softplus if m is None)."""
    losses = []
    for a in range(len(x)):
        dist = [float(((x[a] - x[j]) ** 2).sum()) for j in range(len(x))]
        dist = dist if squared else [math.sqrt(d) for d in dist]
        pos = [dist[j] for j in range(len(x)) if j != a and labels[j] == labels[a]]
        neg = [dist[j] for j in range(len(x)) if labels[j] != labels[a]]
        if not pos or not neg:
            continue
        gap = max(pos) - min(neg)
        losses.append(math.log1p(math.exp(gap)) if margin is None else max(0.0, margin + gap))
    return sum(losses) / len(losses)


def loop_max_margin(sim, margin, hardest, symmetric, excluded):
    """Σ over row anchors (and column anchors) of the summed or the largest hinge over their negatives."""
    n = len(sim)
    total = 0.0
    for i in range(n):
        row = [max(0.0, margin - float(sim[i, i]) + float(sim[i, j])) for j in range(n) if not excluded[i][j]]
        total += max(row, default=0.0) if hardest else sum(row)
        if symmetric:
            col = [
                max(0.0, margin - float(sim[i, i]) + float(sim[j, i])) for j in range(n) if not excluded[j][i]
            ]
            total += max(col, default=0.0) if hardest else sum(col)
    return total


def test_pairwise_distance_matches_norms():
    x = _random(6, 3)
    expected = torch.stack([torch.stack([(a - b).norm() for b in x]) for a in x])
    assert torch.allclose(pairwise_euclidean_distance(x), expected.clamp_min(1e-6), atol=1e-10)


@pytest.mark.parametrize(("margin", "squared"), [(0.3, False), (None, False), (1.0, True)])
def test_batch_hard_matches_loop(margin, squared):
    x = _random(12, 5, seed=1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])  # identity 4 has no positive: left out
    expected = loop_batch_hard(x, labels, margin, squared)
    assert math.isclose(
        float(batch_hard_triplet_loss(x, labels, margin, squared=squared)), expected, rel_tol=1e-10
    )


def test_batch_hard_gradient_is_finite_for_coincident_embeddings():
    x = _random(6, 4, seed=2)
    x[1] = x[0]  # a positive pair at distance 0
    x[3] = x[2]  # a negative pair at distance 0
    x.requires_grad_()
    labels = torch.tensor([0, 0, 1, 2, 2, 1])
    batch_hard_triplet_loss(x, labels, margin=0.3).backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_batch_hard_needs_a_positive_and_a_negative():
    with pytest.raises(ValueError, match="P identities"):
        batch_hard_triplet_loss(_random(4, 3), torch.arange(4))


@pytest.mark.parametrize("hardest", [False, True])
@pytest.mark.parametrize("symmetric", [True, False])
def test_max_margin_matches_loop(hardest, symmetric):
    sim = torch.tanh(_random(7, 7, seed=3))
    excluded = torch.eye(7, dtype=torch.bool)
    expected = loop_max_margin(sim, 0.2, hardest, symmetric, excluded.tolist())
    loss = max_margin_ranking_loss(sim, 0.2, hardest_negative=hardest, symmetric=symmetric)
    assert math.isclose(float(loss), expected, rel_tol=1e-10)
    mean = max_margin_ranking_loss(sim, 0.2, hardest_negative=hardest, symmetric=symmetric, reduction="mean")
    assert math.isclose(float(mean), expected / 7, rel_tol=1e-10)


@pytest.mark.parametrize("hardest", [False, True])
def test_max_margin_positive_mask_removes_false_negatives(hardest):
    sim = torch.tanh(_random(6, 6, seed=4))
    same_video = torch.zeros(6, 6, dtype=torch.bool)
    same_video[0, 3] = same_video[3, 0] = True  # two captions of one video
    excluded = (same_video | torch.eye(6, dtype=torch.bool)).tolist()
    expected = loop_max_margin(sim, 0.5, hardest, True, excluded)
    loss = max_margin_ranking_loss(sim, 0.5, hardest_negative=hardest, positive_mask=same_video)
    assert math.isclose(float(loss), expected, rel_tol=1e-10)
    assert float(loss) < float(max_margin_ranking_loss(sim, 0.5, hardest_negative=hardest)) + 1e-12


def test_max_margin_is_zero_when_positives_win_by_the_margin():
    sim = torch.eye(5, dtype=torch.float64)  # positives 1, negatives 0
    assert float(max_margin_ranking_loss(sim, 0.9)) == 0.0
    assert math.isclose(float(max_margin_ranking_loss(sim, 1.5)), 2 * 5 * 4 * 0.5, rel_tol=1e-12)
