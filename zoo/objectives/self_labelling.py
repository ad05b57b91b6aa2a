"""The self-labelling parts of SeLaVi (Asano, Patrick, Rupprecht, Vedaldi, NeurIPS 2020) around Sinkhorn–Knopp.

The solver itself is :func:`zoo.objectives.sinkhorn.sinkhorn_knopp`; this module holds what SeLaVi adds:

* :func:`self_label` — one head's labels: the modality-combined probabilities ``P = p_video ⊙ p_audio``
  (§3.2), sharpened by ``P^(λ/2)`` and balanced by Sinkhorn–Knopp towards a cluster marginal ``r``;
  with the cost ``−(1/λ)·Σ_i log P^(λ/2)_{i, y_i} / N`` the original logs;
* the cluster marginal (§3.3, "G"): cluster sizes drawn from a Gaussian, :func:`gaussian_cluster_sizes`,
  placed on the clusters by :func:`order_cluster_sizes`, and turned into ``r ∝ 1 / size`` by
  :func:`marginal_from_sizes` — the original code's literal ``r = 1/K_dist`` (uniform sizes give a
  uniform ``r``);
* modality alignment ("MA"), :func:`match_cluster_order`: the permutation of the audio head's clusters
  that best matches the video head's (random pair-swap hill climbing on the L1 distance of the
  probability columns), applied at the first clustering;
* the solve schedule, :func:`self_label_schedule`: ``total · linspace(0, 1, n)^power`` — denser early.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from zoo.objectives.sinkhorn import sinkhorn_knopp

__all__ = [
    "SelfLabels",
    "gaussian_cluster_sizes",
    "marginal_from_sizes",
    "match_cluster_order",
    "order_cluster_sizes",
    "self_label",
    "self_label_schedule",
]

SizeOrder = Literal["original", "by_mass"]


class SelfLabels(NamedTuple):
    """What :func:`self_label` returns.

    Attributes:
        labels: (N,) cluster of every sample.
        cost: ``−(1/λ)·Σ_i log P^(λ/2)_{i, y_i} / N`` (the original's logged cost).
        iterations: Sinkhorn steps run.
    """

    labels: torch.Tensor
    cost: float
    iterations: int


@torch.no_grad()
def self_label(
    probs: torch.Tensor,
    lamb: float = 20.0,
    cluster_marginal: torch.Tensor | None = None,
    *,
    tol: float = 0.1,
    max_iters: int = 2000,
) -> SelfLabels:
    """Self-labels of one head from the modality-combined probabilities ``probs = p_v ⊙ p_a`` (N, K).

    The kernel is ``probs^(λ/2)`` (both modalities' probabilities raised to λ/2: the product's λ/2-th
    power), balanced by Sinkhorn–Knopp to uniform sample weights and the cluster marginal ``r``; each
    sample takes its largest entry of the plan (§3.2 of the paper; ``optimize_L_sk_gpu`` of the code).

    Args:
        probs: (N, K) product of the two modalities' softmax probabilities, every sample of the dataset.
        lamb: λ (SeLaVi: 20).
        cluster_marginal: (K,) positive cluster weights r (default uniform).
        tol: Sinkhorn stopping tolerance on ``Σ_i |β_i/β'_i − 1|``.
        max_iters: cap on Sinkhorn steps.
    """
    probs = probs.double()
    power = lamb / 2
    result = sinkhorn_knopp(probs, power, cluster_marginal=cluster_marginal, tol=tol, max_iters=max_iters)
    log_kernel = power * probs.gather(1, result.labels[:, None]).squeeze(1).log()  # (N,)
    cost = -float(log_kernel.nan_to_num(nan=0.0).sum()) / (lamb * len(probs))
    return SelfLabels(result.labels, cost, result.iterations)


def gaussian_cluster_sizes(
    num_samples: int,
    num_clusters: int,
    std: float = 0.1,
    *,
    clamp: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cluster sizes ``(N(1, std²)·N/K)`` (K,) in float64, clamped at 1 when ``clamp`` (SeLaVi clamps the
    sizes shared by all heads, not the per-head ones)."""
    sizes = (torch.randn(num_clusters, dtype=torch.float64, generator=generator) * std + 1) * (
        num_samples / num_clusters
    )
    return sizes.clamp(min=1) if clamp else sizes


def order_cluster_sizes(
    sizes: torch.Tensor, probs: torch.Tensor, order: SizeOrder = "original"
) -> torch.Tensor:
    """Place the drawn ``sizes`` (K,) on the clusters, given the current probabilities ``probs`` (N, K).

    ``by_mass``: the i-th smallest size goes to the cluster of the i-th smallest mass ``Σ_n probs[n, k]``
    (what the original meant to do). ``original``: what its code does — it sorts the sizes over a
    dimension of length one (a no-op), so size ``i`` goes to the cluster of the i-th smallest mass,
    a permutation that carries over from one clustering to the next.

    Args:
        sizes: (K,) cluster sizes.
        probs: (N, K) the probabilities being balanced (before sharpening).
        order: ``original`` or ``by_mass``.
    """
    if order not in ("original", "by_mass"):
        raise ValueError(f"order must be 'original' or 'by_mass'; got {order!r}")
    by_mass = torch.argsort(probs.sum(dim=0))  # (K,) clusters from the lightest
    placed = torch.empty_like(sizes)
    placed[by_mass] = sizes.sort().values if order == "by_mass" else sizes
    return placed


def marginal_from_sizes(sizes: torch.Tensor) -> torch.Tensor:
    """The cluster marginal of SeLaVi's code from cluster sizes (K,): ``r = (1/size) / Σ(1/size)``.

    The code inverts the drawn sizes (``r = 1./_K_dist``); this is reproduced literally, so a cluster
    given a larger size receives a smaller share of the samples.
    """
    inverse = 1.0 / sizes.double()
    return inverse / inverse.sum()


@torch.no_grad()
def match_cluster_order(
    reference: torch.Tensor,
    other: torch.Tensor,
    steps: int = 50_000,
    restarts: int = 2,
    patience: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The permutation ``perm`` (K,) such that ``other[:, perm]`` matches ``reference`` (both (N, K)).

    SeLaVi's modality alignment: from the identity, draw random cluster pairs (i, j) and swap them when
    that lowers the L1 distance ``Σ_k Σ_n |reference[n, k] − other[n, perm[k]]|``; stop after ``steps``
    draws or ``patience`` draws without a swap; keep the best of ``restarts`` runs (or the identity
    when none improves on it). The pairwise column distances are computed once (K×K), so each draw costs
    O(1).

    Args:
        reference: (N, K) probabilities of the reference modality (video).
        other: (N, K) probabilities of the modality to permute (audio).
        steps: most pair draws per restart.
        restarts: independent runs from the identity.
        patience: stop a run after this many draws without a swap.
        generator: random source of the draws.
    """
    if reference.shape != other.shape or reference.ndim != 2:
        raise ValueError(f"reference and other must be the same (N, K); got {reference.shape}, {other.shape}")
    k = reference.shape[1]
    identity = torch.arange(k)
    if k < 2:
        return identity
    reference, other = reference.double(), other.double()
    distance = torch.cdist(reference.T, other.T, p=1).tolist()  # distance[i][j] = Σ_n |ref_i − other_j|

    def cost(perm: list[int]) -> float:
        return sum(distance[i][p] for i, p in enumerate(perm))

    best, best_cost = identity.tolist(), cost(identity.tolist())
    for _ in range(restarts):
        first = torch.randint(k, (steps,), generator=generator)
        second = (first + torch.randint(1, k, (steps,), generator=generator)) % k  # != first
        perm, last_swap = identity.tolist(), 0
        for step, (i, j) in enumerate(zip(first.tolist(), second.tolist())):
            current = distance[i][perm[i]] + distance[j][perm[j]]
            swapped = distance[i][perm[j]] + distance[j][perm[i]]
            if current - swapped > 0:
                perm[i], perm[j] = perm[j], perm[i]
                last_swap = step
            elif step - last_swap > patience:
                break
        if cost(perm) < best_cost:
            best, best_cost = perm, cost(perm)
    return torch.tensor(best)


def self_label_schedule(total_steps: int, num_solves: int = 100, power: float = 1.5) -> list[float]:
    """The steps at which SeLaVi re-labels: ``total_steps · linspace(0, 1, num_solves)^power`` (ascending).

    The first solve is at step 0 (before any update); the last point equals ``total_steps`` and is never
    reached, so a run labels ``num_solves − 1`` times, densely early (power > 1).

    Args:
        total_steps: optimiser steps of the whole run.
        num_solves: points of the schedule (SeLaVi's ``nopts``: 100).
        power: the schedule's exponent (``schedulepower``: 1.5).
    """
    if num_solves < 2:
        raise ValueError(f"num_solves must be at least 2 (the first solve is at step 0); got {num_solves}")
    return (total_steps * torch.linspace(0, 1, num_solves, dtype=torch.float64) ** power).tolist()
