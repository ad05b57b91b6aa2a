"""Temporal optimal transport (TOT) against a reference written from the paper's formulas (float64).

Parity with the released ``generate_optimal_transport_labels`` was measured separately on CPU (see
``zoo/objectives/optimal_transport.py``).
"""

from __future__ import annotations

import math

import pytest
import torch

from zoo.objectives.optimal_transport import temporal_log_prior, temporal_ot_assignment
from zoo.objectives.sinkhorn import sinkhorn_swav

TOL = dict(atol=1e-12, rtol=1e-10)


def prior_entry(i: int, j: int, n: int, k: int, sigma: float) -> float:
    """T_ij = exp(-d²/(2σ²)) / (σ√(2π)), d = |i/n − j/K| / sqrt(1/n² + 1/K²)."""
    d = abs(i / n - j / k) / math.sqrt(1 / n**2 + 1 / k**2)
    return math.exp(-(d**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def reference_tot(scores, epsilon, sigma, lengths, iters=3):
    """Kernel exp(s/ε)·T per video block; normalise the sum, then (clusters to 1/K, frames to 1/N) × iters."""
    n, k = scores.shape
    kernel = torch.zeros(n, k, dtype=torch.float64)
    start = 0
    for length in lengths:
        for i in range(length):
            for j in range(k):
                kernel[start + i, j] = math.exp(float(scores[start + i, j]) / epsilon) * prior_entry(
                    i, j, length, k, sigma
                )
        start += length
    q = kernel / kernel.sum()
    for _ in range(iters):
        for j in range(k):
            q[:, j] = q[:, j] / q[:, j].sum() / k
        for i in range(n):
            q[i] = q[i] / q[i].sum() / n
    return q * n


def test_log_prior_matches_formula():
    log_prior = temporal_log_prior(7, 4, 0.75, dtype=torch.float64)
    expected = torch.tensor(
        [[prior_entry(i, j, 7, 4, 0.75) for j in range(4)] for i in range(7)], dtype=torch.float64
    )
    assert torch.allclose(log_prior.exp(), expected, **TOL)


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize(("epsilon", "sigma", "lengths"), [(0.08, 1.5, [9, 9]), (0.1, 0.75, [5, 11, 6])])
def test_temporal_ot_matches_reference(epsilon, sigma, lengths, log_domain):
    g = torch.Generator().manual_seed(0)
    scores = torch.sigmoid(torch.randn(sum(lengths), 6, generator=g, dtype=torch.float64)) * 0.4
    expected = reference_tot(scores, epsilon, sigma, lengths)
    codes = temporal_ot_assignment(scores, epsilon, sigma, video_lengths=lengths, log_domain=log_domain)
    assert torch.allclose(codes, expected, **TOL)


def test_without_the_prior_it_is_swav():
    scores = torch.randn(12, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    codes = temporal_ot_assignment(scores, 0.08, temporal=False)
    assert torch.allclose(codes, sinkhorn_swav(scores, 0.08, 3), **TOL)


def test_prior_alone_orders_clusters_along_each_video():
    codes = temporal_ot_assignment(torch.zeros(40, 5, dtype=torch.float64), 0.08, 1.5, video_lengths=[20, 20])
    for video in codes.split(20):
        labels = video.argmax(dim=1)
        assert labels[0] == 0 and labels[-1] == 4
        assert bool((labels.diff() >= 0).all())  # non-decreasing: the diagonal order


def test_large_scores_stay_finite_and_shift_invariant():
    # the released code overflows exp(s / ε) in float32 once s > 88.7·ε (7.1 at ε = 0.08)
    scores = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    codes = temporal_ot_assignment(scores + 8.0, 0.08, video_lengths=[8, 8])
    assert torch.isfinite(codes).all()
    assert torch.allclose(codes, temporal_ot_assignment(scores, 0.08, video_lengths=[8, 8]), atol=1e-5)


def test_video_lengths_must_cover_the_batch():
    with pytest.raises(ValueError, match="video_lengths"):
        temporal_ot_assignment(torch.zeros(10, 3), video_lengths=[4, 4])
