"""Temporal optimal transport pseudo-labels (TOT, Kumar et al. CVPR 2022).

Frames of a video tend to go through its actions in order, so TOT multiplies the SwAV kernel
``exp(s / ε)`` of each (frame, cluster) pair by a Gaussian prior that favours the diagonal of the
(relative frame time, relative cluster index) grid — the order-preserving prior of Su & Hua (CVPR 2017):

    d_ij = |i / n − j / K| / sqrt(1 / n² + 1 / K²),    T_ij = exp(−d_ij² / (2σ²)) / (σ √(2π)),

for frame ``i`` of a video of ``n`` frames and cluster ``j`` of ``K``. The plan ``Q ∝ exp(s / ε) ⊙ T`` is
balanced by Sinkhorn (uniform marginals, 3 rounds, as SwAV) and used as the soft target of a
cross-entropy on ``softmax(s / τ)``. The frames of several videos lie one video after the other along the
batch; each video gets its own prior block.

Differences from the released code (``trquhuytin/TOT-CVPR22``, ``generate_optimal_transport_labels``),
none of which changes the codes for inputs it handles:

* Its prior's constant is ``1 / (2 · 3.142 · σ)`` instead of ``1 / (σ √(2π))``; a constant factor cancels in
  Sinkhorn's first rescaling.
* It exponentiates ``s / ε`` unshifted in float32, so a score above ``88.7 · ε`` (7.1 at ε = 0.08; its
  embeddings and prototypes are not normalised) gives ``inf`` and NaN codes. Here the largest logit is
  taken out first (exact) and the prior enters as a log, so the codes stay finite; there is nothing to
  reproduce for checkpoint parity.
* It multiplies the float32 kernel by a float64 NumPy prior, balances with float32 marginals and returns
  float32; here everything stays in the scores' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from zoo.objectives.infonce import at_least_float32
from zoo.objectives.sinkhorn import sinkhorn

__all__ = ["temporal_log_prior", "temporal_ot_assignment"]


def temporal_log_prior(
    num_frames: int,
    num_clusters: int,
    sigma: float = 1.5,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Log of TOT's Gaussian order prior ``T`` (num_frames, num_clusters), frames and clusters 0-based.

    Args:
        num_frames: n, frames of one video (positions ``i / n``, i = 0 … n − 1, as the original).
        num_clusters: K, clusters (positions ``j / K``).
        sigma: σ, the prior's width in units of ``sqrt(1/n² + 1/K²)`` (TOT: 1.5).
        dtype: result dtype.
        device: result device.
    """
    if num_frames < 1 or num_clusters < 1:
        raise ValueError(f"need at least one frame and one cluster; got {num_frames}, {num_clusters}")
    frame_time = torch.arange(num_frames, dtype=torch.float64) / num_frames  # (n,)
    cluster_time = torch.arange(num_clusters, dtype=torch.float64) / num_clusters  # (K,)
    scale = math.sqrt(1 / num_frames**2 + 1 / num_clusters**2)
    distance = (frame_time[:, None] - cluster_time[None, :]).abs() / scale  # (n, K)
    log_prior = -(distance**2) / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi))
    return log_prior.to(dtype=dtype, device=device)


def temporal_ot_assignment(
    scores: torch.Tensor,
    epsilon: float = 0.08,
    sigma: float = 1.5,
    *,
    video_lengths: Sequence[int] | None = None,
    num_iters: int = 3,
    temporal: bool = True,
    log_domain: bool = False,
    distributed: bool = False,
) -> torch.Tensor:
    """TOT pseudo-labels: Sinkhorn on ``exp(s / ε) ⊙ T`` with uniform marginals; rows sum to 1.

    Args:
        scores: (N, K) frame–prototype scores ``zᵀc``; the frames of each video contiguous and in order.
        epsilon: ε, entropic regularisation (TOT: 0.08).
        sigma: σ of the temporal prior (TOT: 1.5).
        video_lengths: frames per video along ``scores``, summing to N (default: one video of N frames).
            TOT's batches are ``[n] * num_videos``.
        num_iters: Sinkhorn rounds (TOT: 3).
        temporal: apply the prior (TOT's ``--apply_temporal_ot``); False gives plain SwAV codes.
        log_domain: iterate Sinkhorn in the log domain.
        distributed: balance over the frames of every rank (False, as the original: each process's
            batch on its own).

    Returns:
        (N, K) soft cluster assignment of every frame, no gradient.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N frames, K clusters); got {tuple(scores.shape)}")
    num_frames, num_clusters = scores.shape
    log_kernel = at_least_float32(scores.detach()) / epsilon  # (N, K), float32 under autocast: ε divides
    if temporal:
        lengths = [num_frames] if video_lengths is None else list(video_lengths)
        if sum(lengths) != num_frames or min(lengths) < 1:
            raise ValueError(f"video_lengths {lengths} must be positive and sum to the {num_frames} frames")
        log_prior = torch.cat(
            [
                temporal_log_prior(length, num_clusters, sigma, dtype=log_kernel.dtype, device=scores.device)
                for length in lengths
            ]
        )  # (N, K)
        log_kernel = log_kernel + log_prior
    return sinkhorn(log_kernel, num_iters, log_domain=log_domain, distributed=distributed)
