"""Zipf distribution matching (ELo's unsupervised fitness) against independent reference math."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.errors import UsageError
from zoo.objectives.distillation import layer_distillation_loss, pool_channels
from zoo.objectives.zipf import cluster_distribution, zipf_fitness, zipf_kl, zipf_prior


def test_the_prior_is_the_normalised_power_law():
    q = zipf_prior(4, exponent=2.0)
    harmonic = 1 + 1 / 4 + 1 / 9 + 1 / 16  # H_{4,2}
    torch.testing.assert_close(q, torch.tensor([1, 1 / 4, 1 / 9, 1 / 16], dtype=torch.float64) / harmonic)


def test_kl_is_zero_at_the_prior_and_known_for_a_uniform_p():
    q = zipf_prior(5, 1.0)
    assert float(zipf_kl(q, 1.0)) == pytest.approx(0.0, abs=1e-12)
    uniform = torch.full((5,), 0.2)
    expected = sum(0.2 * math.log(0.2 / float(q[i])) for i in range(5))
    assert float(zipf_kl(uniform, 1.0)) == pytest.approx(expected, rel=1e-6)


def test_kl_ignores_how_clusters_are_numbered_and_handles_empty_ones():
    p = torch.tensor([0.1, 0.0, 0.6, 0.3])
    shuffled = p[torch.tensor([2, 0, 3, 1])]
    assert float(zipf_kl(p)) == pytest.approx(float(zipf_kl(shuffled)), abs=1e-12)
    q = zipf_prior(4)
    expected = sum(a * math.log(a / float(b)) for a, b in zip([0.6, 0.3, 0.1], q[:3]))
    assert float(zipf_kl(p)) == pytest.approx(expected, rel=1e-6)


def test_kl_rejects_what_is_not_a_distribution():
    with pytest.raises(UsageError, match="probability vector"):
        zipf_kl(torch.tensor([0.5, 0.6]))


def test_hard_and_soft_cluster_shares():
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.1, 0.0], [0.0, 0.2], [9.0, 0.0]])
    torch.testing.assert_close(
        cluster_distribution(x, centroids), torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)
    )
    soft = cluster_distribution(x, centroids, "soft", variance=0.5)
    d = torch.cdist(x.double(), centroids.double()).square()
    torch.testing.assert_close(soft, torch.softmax(-d, dim=1).mean(0))  # 2σ² = 1


def test_fitness_prefers_power_law_clusters_to_equal_ones():
    torch.manual_seed(0)
    centres = torch.eye(4) * 5  # four well separated directions
    zipf_sizes, equal_sizes = [96, 48, 32, 24], [50, 50, 50, 50]

    def blobs(sizes):
        return torch.cat([centres[i] + 0.05 * torch.randn(n, 4) for i, n in enumerate(sizes)])

    zipf_like = zipf_fitness(blobs(zipf_sizes), num_clusters=4, exponent=1.0)
    equal = zipf_fitness(blobs(equal_sizes), num_clusters=4, exponent=1.0)
    assert zipf_like < 1e-3 < equal


def test_distillation_is_the_mean_squared_distance_and_spares_the_teacher():
    student = torch.randn(3, 5, requires_grad=True)
    teacher = torch.randn(3, 5, requires_grad=True)
    loss = layer_distillation_loss(student, teacher)
    torch.testing.assert_close(loss, ((student - teacher) ** 2).sum(1).mean() / 5)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    layer_distillation_loss(student, teacher, detach_teacher=False).backward()
    assert teacher.grad is not None


def test_pooling_averages_every_position():
    x = torch.randn(2, 3, 4, 5, 6)
    torch.testing.assert_close(pool_channels(x), x.mean(dim=(2, 3, 4)))
