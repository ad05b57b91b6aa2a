"""Weighted kNN against votes computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.eval.knn import knn_accuracy, knn_scores

TRAIN = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
LABELS = torch.tensor([0, 1, 1, 0])
QUERY = torch.tensor([[2.0, 0.0]])  # cosine similarities to TRAIN: 1, 0.8, 0, -1


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [
        (0.5, [math.exp(2.0), math.exp(1.6) + math.exp(0.0)]),  # class 0 wins
        (2.0, [math.exp(0.5), math.exp(0.4) + math.exp(0.0)]),  # a softer vote: class 1 wins
        (None, [1.0, 2.0]),
    ],
)
def test_scores_are_temperature_weighted_votes_of_k_neighbours(temperature, expected):
    scores = knn_scores(TRAIN, LABELS, QUERY, k=3, temperature=temperature)
    assert torch.allclose(scores, torch.tensor([expected]), atol=1e-5)


def test_accuracy_on_separable_clusters_and_tie_break():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(8) * 5
    train_y = torch.arange(8).repeat_interleave(10)
    test_y = torch.arange(8).repeat_interleave(3)
    train_x = centers[train_y] + torch.randn(80, 8, generator=g) * 0.1
    test_x = centers[test_y] + torch.randn(24, 8, generator=g) * 0.1
    result = knn_accuracy(train_x, train_y, test_x, test_y, k=5)
    assert result == {"top1": 100.0, "top5": 100.0}
    # a 1-1 unweighted tie goes to the smaller class index
    scores = knn_scores(TRAIN, LABELS, QUERY, k=2, temperature=None)
    assert scores.argmax(1).item() == 0
