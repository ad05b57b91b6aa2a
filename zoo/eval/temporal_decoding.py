"""Unsupervised segmentation by clusters in a fixed order: ordering by time, Viterbi, background.

CTE (Kukleva et al., CVPR 2019) and TOT (Kumar et al., CVPR 2022) turn per-frame cluster scores into
segments in three steps, implemented here on plain arrays:

1. :func:`order_clusters_by_time` — every frame takes its best cluster; clusters are ordered by the mean
   relative time ``t / T`` of their frames over all videos of an activity (TOT ``Corpus.cluster_prototype``).
   A cluster that no frame picks has no such mean: it is placed by the mean time weighted by its
   likelihood over every frame instead (the original leaves it out of the ordering).
2. :func:`fixed_order_viterbi` — each video is decoded as the sequence of clusters in that order, each at
   least one frame, starting with the first and ending with the last, maximising the summed per-frame
   log-likelihoods (TOT ``Video.viterbi`` with its ``Grammar``; its stay/move costs are both ``−log 0.5``,
   constant per frame, so they change nothing). Ties are broken as there: the backtrace steps back to
   the previous cluster as soon as it can, so the decoded runs change as late as possible.
3. :func:`foreground_mask` — optional background (YouTube Instructions): a frame is background when no
   cluster's log-likelihood exceeds that cluster's ``percentile``-th percentile over all frames (TOT
   ``bg_trh``, 45); background frames are left out of the decoding and labelled ``-1``.

Note: TOT's released inference decodes in the order of the prototype indices (``Video._pi = range(K)``),
not the time order of step 1, which only relabels its pre-Viterbi assignment; the two agree when the
temporal prior trained the prototypes in order. :func:`decode_segments` takes ``order="index"`` for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from zoo.errors import UsageError

__all__ = ["decode_segments", "fixed_order_viterbi", "foreground_mask", "order_clusters_by_time"]

Array = torch.Tensor | np.ndarray


def _as_grid(log_likelihood: Array, name: str) -> np.ndarray:
    grid = (
        log_likelihood.detach().cpu().numpy() if isinstance(log_likelihood, torch.Tensor) else log_likelihood
    )
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 2 or not grid.size:
        raise UsageError(f"{name} must be a non-empty (frames, clusters) grid, got shape {grid.shape}")
    return grid


def order_clusters_by_time(log_likelihoods: Sequence[Array]) -> np.ndarray:
    """Cluster ids sorted by the mean relative time of the frames whose best cluster they are.

    Args:
        log_likelihoods: per video, (T_i, K) per-frame cluster log-likelihoods (e.g. log softmax of
            prototype scores); frames in time order.

    Returns:
        (K,) the cluster ids, earliest first.
    """
    grids = [_as_grid(g, f"log_likelihoods[{i}]") for i, g in enumerate(log_likelihoods)]
    if not grids:
        raise UsageError("order_clusters_by_time needs at least one video")
    num_clusters = grids[0].shape[1]
    time_sum, count = np.zeros(num_clusters), np.zeros(num_clusters)
    soft_time_sum, soft_weight = np.zeros(num_clusters), np.zeros(num_clusters)
    for i, grid in enumerate(grids):
        if grid.shape[1] != num_clusters:
            raise UsageError(f"video {i} has {grid.shape[1]} clusters, video 0 has {num_clusters}")
        relative_time = np.arange(len(grid)) / len(grid)  # (T,) as TOT: frame / frames
        best = grid.argmax(axis=1)  # (T,)
        np.add.at(time_sum, best, relative_time)
        np.add.at(count, best, 1)
        weights = np.exp(grid - grid.max())  # (T, K) likelihoods up to a constant
        soft_time_sum += relative_time @ weights
        soft_weight += weights.sum(axis=0)
    mean_time = np.where(count > 0, time_sum / np.maximum(count, 1), soft_time_sum / soft_weight)
    return np.argsort(mean_time, kind="stable")


def fixed_order_viterbi(log_likelihood: Array, order: Sequence[int] | np.ndarray) -> np.ndarray:
    """The best labelling of one video that visits ``order``'s clusters in that order, each once.

    Args:
        log_likelihood: (T, K) per-frame cluster log-likelihoods.
        order: the clusters to visit, first to last (e.g. from :func:`order_clusters_by_time`).

    Returns:
        (T,) the cluster id of every frame.
    """
    grid = _as_grid(log_likelihood, "log_likelihood")
    order = np.asarray(order, dtype=np.int64)
    num_frames, num_states = len(grid), len(order)
    if num_states > num_frames:
        raise UsageError(f"cannot visit {num_states} clusters in order in {num_frames} frames")
    cost = -grid[:, order]  # (T, S) in visiting order
    total = np.full(num_states, np.inf)
    total[0] = cost[0, 0]
    moved = np.zeros((num_frames, num_states), dtype=bool)  # frame t entered state s from s - 1
    for t in range(1, num_frames):
        came_from_previous = np.concatenate([[np.inf], total[:-1]])
        moved[t] = came_from_previous <= total  # ties: from the previous cluster, as the original's argmin
        total = np.where(moved[t], came_from_previous, total) + cost[t]
    states = np.empty(num_frames, dtype=np.int64)
    state = num_states - 1
    for t in range(num_frames - 1, -1, -1):
        states[t] = state
        state -= int(moved[t, state])
    return order[states]


def foreground_mask(log_likelihoods: Sequence[Array], percentile: float) -> list[np.ndarray]:
    """Per video, (T_i,) True where some cluster's log-likelihood exceeds its percentile over all frames.

    Args:
        log_likelihoods: per video, (T_i, K) per-frame cluster log-likelihoods.
        percentile: the per-cluster threshold, in percent of all frames of all videos (TOT: 45).
    """
    if not 0 <= percentile < 100:
        raise UsageError(f"background percentile must lie in [0, 100), got {percentile}")
    grids = [_as_grid(g, f"log_likelihoods[{i}]") for i, g in enumerate(log_likelihoods)]
    pooled = np.concatenate(grids)  # (N, K)
    thresholds = np.sort(pooled, axis=0)[int(percentile / 100 * len(pooled))]  # (K,) as TOT's bg_trh
    return [(grid > thresholds).any(axis=1) for grid in grids]


def decode_segments(
    log_likelihoods: Sequence[Array],
    order: Literal["time", "index"] = "time",
    background_percentile: float | None = None,
) -> list[np.ndarray]:
    """Segment the videos of one activity: cluster order, optional background, fixed-order Viterbi.

    Args:
        log_likelihoods: per video, (T_i, K) per-frame cluster log-likelihoods, frames in time order.
        order: ``"time"`` orders the clusters by their mean relative time; ``"index"`` keeps the
            prototype order (TOT's released inference).
        background_percentile: label ``-1`` the frames that :func:`foreground_mask` finds background at
            this percentile (None: no background).

    Returns:
        Per video, (T_i,) cluster ids (``-1``: background).
    """
    grids = [_as_grid(g, f"log_likelihoods[{i}]") for i, g in enumerate(log_likelihoods)]
    if order == "time":
        sequence = order_clusters_by_time(grids)
    elif order == "index":
        sequence = np.arange(grids[0].shape[1]) if grids else np.zeros(0, np.int64)
    else:
        raise UsageError(f"order must be 'time' or 'index', not {order!r}")
    if background_percentile is None:
        masks = [np.ones(len(grid), dtype=bool) for grid in grids]
    else:
        masks = foreground_mask(grids, background_percentile)
    labels = []
    for i, (grid, mask) in enumerate(zip(grids, masks)):
        video = np.full(len(grid), -1, dtype=np.int64)
        if background_percentile is None and len(grid) < len(sequence):
            raise UsageError(f"video {i} has {len(grid)} frames, fewer than its {len(sequence)} clusters")
        if mask.sum() >= len(sequence):  # with background: too few foreground frames leave it all background
            video[mask] = fixed_order_viterbi(grid[mask], sequence)
        labels.append(video)
    return labels
