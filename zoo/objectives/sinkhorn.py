"""Sinkhorn–Knopp solvers for balanced (or arbitrarily weighted) cluster assignment.

Both forms look for a transport plan ``Q`` (N samples × K clusters) of the shape
``Q = diag(β) · kernel · diag(α)`` whose row sums are the sample marginal ``c`` (N,) and whose column sums
are the cluster marginal ``r`` (K,), by alternately rescaling columns (α) and rows (β).

* :func:`sinkhorn_swav` — the online form of SwAV (Caron et al. 2020, §3.1): kernel ``exp(scores / ε)``,
  a fixed small number of iterations on one batch, returns the soft codes ``Q`` scaled so that every
  sample's row sums to 1. Under an initialised process group the batch is the union of every rank's
  batch: the sums over samples are all-reduced, each rank keeps its own rows (``distributed_sinkhorn``).
* :func:`sinkhorn_knopp` — the offline form of SeLa (Asano et al. 2020, §3.1) and SeLaVi: kernel
  ``P^λ`` of model probabilities ``P`` over a whole dataset, iterated until the sample scaling stops
  moving (tolerance, checked every few steps, plus an iteration cap), returns hard labels
  ``argmax_k Q_ik`` with the plan.

Both run in the exponential domain by default (as the originals, with the exact global rescaling that
avoids overflow) or in the log domain (``log_domain=True``), which also survives kernels whose entries
underflow (tiny ε, large λ, float32).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist

from zoo.objectives.distributed import is_distributed
from zoo.objectives.infonce import at_least_float32

__all__ = ["SinkhornKnoppResult", "sinkhorn", "sinkhorn_knopp", "sinkhorn_swav"]


def _all_reduce(
    x: torch.Tensor, distributed: bool, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM
) -> torch.Tensor:
    """Reduce ``x`` over ranks in place when ``distributed`` and a process group is up; returns ``x``."""
    if distributed and is_distributed():
        dist.all_reduce(x, op=op)
    return x


def _logsumexp_over_samples(log_q: torch.Tensor, distributed: bool) -> torch.Tensor:
    """``log Σ_i exp(log_q[i, k])`` over the samples (of every rank when ``distributed``); (N, K) -> (K,)."""
    peak = _all_reduce(log_q.amax(dim=0), distributed, dist.ReduceOp.MAX)  # (K,)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = _all_reduce((log_q - peak).exp().sum(dim=0), distributed)  # (K,)
    return peak + total.log()


def _marginals(
    num_samples: int,
    num_clusters: int,
    sample_marginal: torch.Tensor | None,
    cluster_marginal: torch.Tensor | None,
    like: torch.Tensor,
    distributed: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised (c (N,), r (K,)); ``c`` sums to 1 over the samples of every rank, ``r`` to 1."""
    if sample_marginal is None:
        sample_marginal = torch.ones(num_samples, dtype=like.dtype, device=like.device)
    if cluster_marginal is None:
        cluster_marginal = torch.ones(num_clusters, dtype=like.dtype, device=like.device)
    if sample_marginal.shape != (num_samples,) or cluster_marginal.shape != (num_clusters,):
        raise ValueError(
            f"sample_marginal must be ({num_samples},) and cluster_marginal ({num_clusters},); "
            f"got {tuple(sample_marginal.shape)} and {tuple(cluster_marginal.shape)}"
        )
    if bool((sample_marginal <= 0).any()) or bool((cluster_marginal <= 0).any()):
        raise ValueError("marginals must be positive")
    sample_marginal = sample_marginal.to(like)
    cluster_marginal = cluster_marginal.to(like)
    sample_total = _all_reduce(sample_marginal.sum(), distributed)
    return sample_marginal / sample_total, cluster_marginal / cluster_marginal.sum()


@torch.no_grad()
def sinkhorn(
    log_kernel: torch.Tensor,
    num_iters: int = 3,
    *,
    sample_marginal: torch.Tensor | None = None,
    cluster_marginal: torch.Tensor | None = None,
    log_domain: bool = False,
    distributed: bool = True,
) -> torch.Tensor:
    """Fixed-iteration Sinkhorn on ``exp(log_kernel)`` (N, K); rows of the result sum to 1.

    Each iteration first rescales every cluster column to its marginal ``r_k`` (summed over all ranks),
    then every sample row to ``c_i``; the returned codes are ``Q_ik / c_i``. This is the shared engine of
    :func:`sinkhorn_swav` and the temporal-prior solver of :mod:`zoo.objectives.optimal_transport`.

    Args:
        log_kernel: (N, K) log of the unnormalised plan, e.g. ``scores / ε``; this rank's samples.
        num_iters: number of (column, row) rescaling rounds.
        sample_marginal: (N,) positive weights of this rank's samples (default uniform), normalised over
            all ranks.
        cluster_marginal: (K,) positive cluster weights (default uniform), normalised to sum 1.
        log_domain: iterate on log Q with logsumexp instead of on Q.
        distributed: under an initialised process group, solve over the samples of every rank (sums over
            samples are all-reduced); False solves each rank's batch on its own.
    """
    if log_kernel.ndim != 2:
        raise ValueError(f"log_kernel must be (N samples, K clusters); got {tuple(log_kernel.shape)}")
    if num_iters < 1:
        raise ValueError(f"num_iters must be at least 1, got {num_iters}")
    log_kernel = at_least_float32(log_kernel)  # not in bf16 under autocast
    n, k = log_kernel.shape
    c, r = _marginals(n, k, sample_marginal, cluster_marginal, log_kernel, distributed)
    if log_domain:
        log_q = log_kernel
        for _ in range(num_iters):
            log_q = log_q + (r.log() - _logsumexp_over_samples(log_q, distributed))  # columns sum to r
            log_q = log_q + (c.log() - log_q.logsumexp(dim=1))[:, None]  # rows sum to c
        return (log_q - c.log()[:, None]).exp()
    # A global constant cancels in the first column rescaling: take out the largest logit so that exp()
    # cannot overflow.
    peak = _all_reduce(log_kernel.max(), distributed, dist.ReduceOp.MAX)
    q = (log_kernel - peak).exp()  # (N, K)
    q = q / _all_reduce(q.sum(), distributed)
    for _ in range(num_iters):
        q = q * (r / _all_reduce(q.sum(dim=0), distributed))  # columns sum to r
        q = q * (c / q.sum(dim=1))[:, None]  # rows sum to c
    return q / c[:, None]


def sinkhorn_swav(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    num_iters: int = 3,
    *,
    sample_marginal: torch.Tensor | None = None,
    cluster_marginal: torch.Tensor | None = None,
    log_domain: bool = False,
) -> torch.Tensor:
    """SwAV's online codes: ``Q* = diag(u) exp(CᵀZ / ε) diag(v)`` on the (gathered) batch, rows summing to 1.

    Solves ``max_Q Tr(Qᵀ CᵀZ) + ε H(Q)`` over the transportation polytope (SwAV §3.1) with
    ``num_iters`` Sinkhorn rounds; gradients never flow (the codes are targets).

    Args:
        scores: (B, K) prototype scores ``zᵀc`` of this rank's samples.
        epsilon: entropic regularisation ε (SwAV: 0.05; 0.03 for some runs).
        num_iters: Sinkhorn rounds (SwAV: 3).
        sample_marginal: (B,) positive sample weights (default uniform 1/B over all ranks).
        cluster_marginal: (K,) positive prototype weights (default uniform 1/K).
        log_domain: iterate in the log domain (for very small ε).

    Returns:
        (B, K) soft assignment of this rank's samples, each row summing to 1.
    """
    return sinkhorn(
        scores / epsilon,
        num_iters,
        sample_marginal=sample_marginal,
        cluster_marginal=cluster_marginal,
        log_domain=log_domain,
    )


class SinkhornKnoppResult(NamedTuple):
    """What :func:`sinkhorn_knopp` returns.

    Attributes:
        labels: (N,) hard self-labels ``argmax_k Q_ik``.
        plan: (N, K) transport plan ``diag(β) P^λ diag(α)``; rows sum to ``c``, columns to ``r``
            (up to the stopping tolerance), the whole to 1.
        iterations: Sinkhorn steps run.
        error: last stopping statistic ``Σ_i |β_i / β'_i − 1|``.
    """

    labels: torch.Tensor
    plan: torch.Tensor
    iterations: int
    error: float


@torch.no_grad()
def sinkhorn_knopp(
    probs: torch.Tensor,
    power: float = 20.0,
    *,
    sample_marginal: torch.Tensor | None = None,
    cluster_marginal: torch.Tensor | None = None,
    tol: float = 0.1,
    max_iters: int = 2000,
    check_every: int = 10,
    log_domain: bool = False,
    dtype: torch.dtype = torch.float64,
) -> SinkhornKnoppResult:
    """SeLa/SeLaVi self-labelling: ``Q = diag(β) P^λ diag(α)`` with row sums ``c`` and column sums ``r``.

    The iteration (SeLa §3.1) alternates ``α = r / (P^λᵀ β)`` and ``β = c / (P^λ α)`` from ``β = c``; every
    ``check_every`` steps it measures ``err = Σ_i |β_i / β_new_i − 1|`` and stops once the last measure is
    at most ``tol`` or after ``max_iters`` steps — the originals' schedule, so that the same input gives
    the same labels. SeLaVi combines modalities by passing ``probs = p_video ⊙ p_audio`` with ``power =
    λ / 2``; its Gaussian cluster marginal is a ``cluster_marginal``.

    Args:
        probs: (N, K) model probabilities of every sample (rows of a softmax). The solve is local: under
            several ranks, gather the whole dataset's probabilities on every rank first, and every
            rank gets the same labels.
        power: λ, the sharpening exponent (SeLa/SeLaVi: 20).
        sample_marginal: (N,) positive sample weights (default uniform 1/N).
        cluster_marginal: (K,) positive cluster weights (default uniform 1/K).
        tol: stop once ``err`` is at most this (originals: 0.1).
        max_iters: cap on the number of steps (SeLaVi: 2000; SeLa has none).
        check_every: measure ``err`` every this many steps (originals: 10).
        log_domain: iterate on log scalings (``power · log P``), for probabilities whose λ-th power
            underflows.
        dtype: working precision (originals: float64).
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N samples, K clusters); got {tuple(probs.shape)}")
    if max_iters < 1 or check_every < 1:
        raise ValueError(f"max_iters and check_every must be at least 1; got {max_iters}, {check_every}")
    probs = probs.to(dtype)
    n, k = probs.shape
    c, r = _marginals(n, k, sample_marginal, cluster_marginal, probs, distributed=False)
    if log_domain:
        log_kernel = power * probs.log()  # (N, K)

        def update(log_beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            log_alpha = r.log() - (log_kernel + log_beta[:, None]).logsumexp(dim=0)  # (K,)
            return log_alpha, c.log() - (log_kernel + log_alpha[None, :]).logsumexp(dim=1)

        def ratio(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            return (old - new).exp()

        beta = c.log()
    else:
        kernel = probs.pow(power)  # (N, K)

        def update(beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            alpha = r / (kernel.T @ beta)  # (K,)
            return alpha, c / (kernel @ alpha)

        def ratio(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
            return old / new

        beta = c
    error, step = float("inf"), 0
    while error > tol and step < max_iters:
        alpha, beta_new = update(beta)  # (K,), (N,)
        if step % check_every == 0:
            error = float((ratio(beta, beta_new) - 1).abs().sum())
        beta = beta_new
        step += 1
    if log_domain:
        log_plan = beta[:, None] + log_kernel + alpha[None, :]
        return SinkhornKnoppResult(log_plan.argmax(dim=1), log_plan.exp(), step, error)
    plan = beta[:, None] * kernel * alpha[None, :]
    return SinkhornKnoppResult(plan.argmax(dim=1), plan, step, error)
