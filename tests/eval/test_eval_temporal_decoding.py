"""Fixed-order decoding of cluster likelihoods (CTE/TOT inference): Viterbi against brute force over every
ordered segmentation, cluster ordering by mean relative time, background percentile, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from zoo.errors import UsageError
from zoo.eval.temporal_decoding import (
    decode_segments,
    fixed_order_viterbi,
    foreground_mask,
    order_clusters_by_time,
)


def _brute_force(grid: np.ndarray, order: np.ndarray) -> tuple[float, np.ndarray]:
    """Best score over every split of T frames into len(order) non-empty runs, in order."""
    frames, states = grid.shape[0], len(order)
    best = (-np.inf, None)
    for cuts in itertools.combinations(range(1, frames), states - 1):
        bounds = (0, *cuts, frames)
        labels = np.concatenate(
            [np.full(b - a, order[s]) for s, (a, b) in enumerate(itertools.pairwise(bounds))]
        )
        score = grid[np.arange(frames), labels].sum()
        if score > best[0]:
            best = (score, labels)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_finds_the_best_ordered_segmentation(seed):
    rng = np.random.default_rng(seed)
    frames, clusters = int(rng.integers(4, 10)), int(rng.integers(2, 5))
    grid = rng.normal(size=(frames, clusters)) * 2
    order = rng.permutation(clusters)
    labels = fixed_order_viterbi(grid, order)
    best_score, _ = _brute_force(grid, order)
    assert grid[np.arange(frames), labels].sum() == pytest.approx(best_score)
    runs = [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]
    assert runs == list(order)  # every cluster once, in the given order


def test_viterbi_breaks_ties_as_the_original():
    # the original's argmin over (previous cluster, same cluster) takes the previous one on a tie, so the
    # backtrace steps back a cluster as soon as it can: runs change as late as possible
    labels = fixed_order_viterbi(np.zeros((6, 3)), [0, 1, 2])
    assert labels.tolist() == [0, 0, 0, 0, 1, 2]


def test_clusters_are_ordered_by_the_mean_time_of_their_frames():
    grid = np.full((9, 3), -5.0)
    grid[np.arange(9), [2, 2, 2, 0, 0, 0, 1, 1, 1]] = 0.0  # cluster 2 first, then 0, then 1
    assert order_clusters_by_time([grid, grid[:6]]).tolist() == [2, 0, 1]


def test_a_cluster_no_frame_picks_is_placed_by_its_likelihood_over_time():
    grid = np.full((10, 3), -9.0)
    grid[:5, 0], grid[5:, 1] = 0.0, 0.0  # cluster 0 early, 1 late; 2 never best
    grid[:, 2] = np.linspace(-8, -1, 10)  # 2 grows more likely towards the end: after 1
    assert order_clusters_by_time([grid]).tolist() == [0, 1, 2]


def test_background_frames_fall_below_every_clusters_percentile():
    grid = np.array([[0.0, -1], [-1, 0], [-5, -5], [-4, -6]])
    (mask,) = foreground_mask([grid], 50)
    assert mask.tolist() == [True, True, False, False]
    (labels,) = decode_segments([grid], "index", background_percentile=50)
    assert labels.tolist() == [0, 1, -1, -1]


def test_index_order_keeps_the_prototype_order():
    grid = np.full((6, 2), -5.0)
    grid[:3, 1], grid[3:, 0] = 0.0, 0.0  # cluster 1 comes first in time
    assert decode_segments([grid], "time")[0].tolist() == [1, 1, 1, 0, 0, 0]
    in_index_order = decode_segments([grid], "index")[0]  # forced to start with 0 and end with 1
    assert in_index_order[0] == 0 and in_index_order[-1] == 1 and (np.diff(in_index_order) >= 0).all()


def test_bad_input_is_a_named_error():
    with pytest.raises(UsageError, match="video 1 has 2 frames, fewer than its 3 clusters"):
        decode_segments([np.zeros((5, 3)), np.zeros((2, 3))])
    with pytest.raises(UsageError, match="order must be"):
        decode_segments([np.zeros((5, 3))], "random")
    with pytest.raises(UsageError, match="video 1 has 2 clusters"):
        order_clusters_by_time([np.zeros((5, 3)), np.zeros((5, 2))])
    with pytest.raises(UsageError, match="percentile"):
        foreground_mask([np.zeros((5, 3))], 100)
