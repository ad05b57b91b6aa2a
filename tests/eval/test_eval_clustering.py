"""NMI/ARI/matched accuracy/purity against hand computations; k-means of features end to end."""

from __future__ import annotations

import math

import torch

from zoo.eval.clustering import cluster_features, clustering_scores


def _entropy(counts: list[int]) -> float:
    n = sum(counts)
    return -sum(c / n * math.log(c / n) for c in counts if c)


def test_scores_by_hand():
    pred = torch.tensor([0, 0, 1, 1, 1, 2])
    true = torch.tensor([0, 0, 1, 1, 2, 2])
    # contingency rows = clusters, cols = classes: [[2,0,0],[0,2,1],[0,0,1]]
    table = [[2, 0, 0], [0, 2, 1], [0, 0, 1]]
    n = 6
    mi = sum(
        table[i][j] / n * math.log(table[i][j] * n / (sum(table[i]) * sum(r[j] for r in table)))
        for i in range(3)
        for j in range(3)
        if table[i][j]
    )
    nmi = mi / ((_entropy([2, 3, 1]) + _entropy([2, 2, 2])) / 2)
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    index = sum(comb(c) for row in table for c in row)
    rows, cols = sum(comb(c) for c in (2, 3, 1)), sum(comb(c) for c in (2, 2, 2))
    expected_index = rows * cols / comb(n)
    ari = (index - expected_index) / ((rows + cols) / 2 - expected_index)
    got = clustering_scores(pred, true)
    assert abs(got["nmi"] - nmi) < 1e-5
    assert abs(got["ari"] - ari) < 1e-5
    assert abs(got["accuracy"] - 500 / 6) < 1e-9  # clusters matched 0->0, 1->1, 2->2: 2 + 2 + 1 of 6
    assert abs(got["purity"] - 500 / 6) < 1e-9  # majority class per cluster: 2 + 2 + 1 of 6


def test_purity_rewards_over_clustering_and_matched_accuracy_does_not():
    true = torch.tensor([0, 0, 0, 1, 1, 1])
    singletons = torch.arange(6)  # every sample its own cluster: pure, but only 2 can be matched
    got = clustering_scores(singletons, true)
    assert got["purity"] == 100.0
    assert abs(got["accuracy"] - 200 / 6) < 1e-9


def test_separated_blobs_score_perfectly():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(25)
    features = torch.eye(4)[labels] * 4 + torch.randn(100, 4, generator=g) * 0.2
    assert cluster_features(features, labels) == {"nmi": 1.0, "ari": 1.0, "accuracy": 100.0, "purity": 100.0}
    # L2-normalised (the default) or not, and with a cluster per class or more
    assert cluster_features(features, labels, normalize=False)["accuracy"] == 100.0
    assert cluster_features(features, labels, num_clusters=8)["nmi"] < 1.0
