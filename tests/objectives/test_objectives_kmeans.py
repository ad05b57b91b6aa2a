"""k-means against independent computations: separated blobs, exhaustive optimum, Lloyd fixed point."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.objectives.kmeans import available_backends, kmeans

BACKENDS = ["faiss", "sklearn"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param not in available_backends():
        pytest.skip(f"{request.param} is not installed (pip install 'zoo[cluster]' for faiss)")
    return request.param


def _blobs(per_class: int = 25, classes: int = 4, dim: int = 6, noise: float = 0.2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    centres = torch.eye(classes, dim) * 4  # (K, D), 4√2 apart
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=g), labels


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to a relabelling: the pairs (a_i, b_i) form a bijection."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})


def test_separated_blobs_are_recovered(backend):
    x, labels = _blobs()
    result = kmeans(x, 4, backend=backend)
    assert result.centroids.shape == (4, 6) and result.assignments.shape == (100,)
    assert _same_partition(result.assignments, labels)
    class_means = torch.stack([x[labels == c].mean(0) for c in range(4)])  # the optimal centroids
    matched = class_means[labels]
    torch.testing.assert_close(result.centroids[result.assignments], matched, atol=1e-5, rtol=0)
    assert result.inertia == pytest.approx(float((x - matched).square().sum()), rel=1e-5)


def test_finds_the_exhaustive_optimum(backend):
    """On 9 points, the best of all 3^9 partitions (centroid = mean of its points) is found."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64)
    one_hot = F.one_hot(torch.tensor(list(itertools.product(range(3), repeat=9))), 3).double()  # (P, 9, 3)
    counts = one_hot.sum(1)  # (P, 3)
    sums = torch.einsum("pnk,nd->pkd", one_hot, x)  # (P, 3, 2)
    # Σ_i ||x_i - m_a(i)||² = Σ_i ||x_i||² - Σ_k ||s_k||² / n_k, over partitions with no empty cluster
    inertia = x.square().sum() - (sums.square().sum(-1) / counts.clamp_min(1)).sum(-1)
    best = float(inertia[(counts > 0).all(-1)].min())
    result = kmeans(x, 3, restarts=10, backend=backend)
    assert result.inertia == pytest.approx(best, rel=1e-5)


def test_result_is_a_lloyd_fixed_point(backend):
    """Every point is at its nearest centroid and every centroid is the mean of its points."""
    x, _ = _blobs(per_class=50, classes=5, dim=8, noise=1.5, seed=1)  # overlapping clusters
    result = kmeans(x, 5, backend=backend)
    assert torch.equal(torch.cdist(x, result.centroids).argmin(1), result.assignments)
    for c in range(5):
        members = x[result.assignments == c]
        torch.testing.assert_close(result.centroids[c], members.mean(0), atol=1e-4, rtol=0)
    own = (x - result.centroids[result.assignments]).square().sum()
    assert result.inertia == pytest.approx(float(own), rel=1e-6)


def test_backends_agree_on_easy_data():
    if not {"faiss", "sklearn"} <= set(available_backends()):
        pytest.skip("needs both faiss and scikit-learn (pip install 'zoo[cluster]')")
    x, _ = _blobs(per_class=40, classes=6, dim=8, noise=0.3, seed=2)
    faiss_result, sklearn_result = kmeans(x, 6, backend="faiss"), kmeans(x, 6, backend="sklearn")
    assert _same_partition(faiss_result.assignments, sklearn_result.assignments)
    assert faiss_result.inertia == pytest.approx(sklearn_result.inertia, rel=1e-5)


def test_normalize_clusters_directions(backend):
    """Cosine k-means: the rows' lengths do not matter, and the inertia is that of the unit rows."""
    x, labels = _blobs(noise=0.5)
    scales = torch.rand(len(x), 1, generator=torch.Generator().manual_seed(4)) * 10 + 0.1
    result = kmeans(x * scales, 4, normalize=True, backend=backend)
    reference = kmeans(F.normalize(x, dim=1), 4, backend=backend)
    assert _same_partition(result.assignments, labels)
    assert torch.equal(result.assignments, reference.assignments)
    assert result.inertia == pytest.approx(reference.inertia, rel=1e-5)
    assert result.inertia < 4.0 * len(x)  # unit rows: every squared distance is at most 4


def test_seeded_runs_are_identical(backend):
    x, _ = _blobs(per_class=30, classes=5, dim=8, noise=1.5, seed=5)
    first, second = kmeans(x, 5, seed=7, backend=backend), kmeans(x, 5, seed=7, backend=backend)
    assert torch.equal(first.assignments, second.assignments)
    assert torch.equal(first.centroids, second.centroids)


@pytest.mark.parametrize(
    "features, num_clusters, backend, message",
    [
        (torch.zeros(5, 2), 6, "auto", "between 1 and N=5"),
        (torch.zeros(5), 2, "auto", "(N, D) feature matrix"),
        (torch.zeros(5, 2), 2, "kmeans++", "unknown k-means backend 'kmeans++'"),
    ],
)
def test_bad_arguments_are_named(features, num_clusters, backend, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        kmeans(features, num_clusters, backend=backend)
