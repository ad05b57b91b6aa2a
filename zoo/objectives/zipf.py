"""Zipf distribution matching: an unsupervised fitness of a representation (ELo, Piergiovanni et al. 2020).

ELo scores a representation without labels by clustering the features of a large unlabeled set and
comparing the distribution of cluster sizes with a Zipf (power-law) prior: natural video classes
are not equally frequent, so a good representation should give a few large clusters and many small
ones, while a collapsed one gives one cluster and a noisy one gives equal clusters. The fitness is
KL(p ‖ q), lower is better, with

* p(c_i): the share of the samples in cluster i (``assignment="hard"``: cluster sizes), or
  the mean over samples of p(c_i | x) = softmax_i(−‖x − c_i‖² / (2σ²)) (``"soft"``, isotropic
  clusters of equal variance);
* q(c_i) = i^(−s) / H_{k,s}, the Zipf law over ranks with H_{k,s} = Σ_{j≤k} j^(−s);
* p sorted in decreasing order before matching ranks, so the fitness does not depend on how
  k-means numbers its clusters.

Only the paper's abstract was read: the k-means number of clusters k, the exponent s, hard or soft
assignment, the rank sorting and the feature normalisation are zoo's choices (arguments here).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.objectives.kmeans import kmeans

__all__ = ["cluster_distribution", "zipf_fitness", "zipf_kl", "zipf_prior"]

Assignment = Literal["hard", "soft"]


def zipf_prior(num_clusters: int, exponent: float = 1.0) -> torch.Tensor:
    """q(c_i) = i^(−s) / H_{k,s} over ranks i = 1..k (k,), in float64."""
    if num_clusters < 1:
        raise UsageError(f"the Zipf prior needs at least one cluster, got {num_clusters}")
    ranks = torch.arange(1, num_clusters + 1, dtype=torch.float64)
    weights = ranks.pow(-exponent)
    return weights / weights.sum()  # divided by the generalised harmonic number H_{k,s}


def cluster_distribution(
    features: torch.Tensor,
    centroids: torch.Tensor,
    assignment: Assignment = "hard",
    variance: float = 0.5,
) -> torch.Tensor:
    """p(c_i) (k,): the share of ``features`` (N, D) in each of the ``centroids`` (k, D).

    Args:
        features: the points, one per row.
        centroids: the cluster centres.
        assignment: ``hard`` (nearest centroid: cluster sizes / N) or ``soft`` (mean of
            softmax_i(−‖x − c_i‖² / (2σ²))).
        variance: σ² of the soft assignment (0.5: 2σ² = 1).
    """
    distances = torch.cdist(features.double(), centroids.double()).square()  # (N, k)
    if assignment == "hard":
        nearest = distances.argmin(dim=1)
        return torch.bincount(nearest, minlength=len(centroids)).double() / len(features)
    if assignment == "soft":
        return torch.softmax(-distances / (2 * variance), dim=1).mean(dim=0)
    raise UsageError(f"assignment must be 'hard' or 'soft', got {assignment!r}")


def zipf_kl(p: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """KL(p ‖ q) between a cluster distribution p (k,) sorted by decreasing share and the Zipf prior q.

    Empty clusters contribute 0 (0 · log 0 = 0). The result is a float64 scalar ≥ 0, 0 iff the
    sorted p equals q.
    """
    p = p.double().flatten()
    if (p < 0).any() or not torch.isclose(p.sum(), torch.ones((), dtype=torch.float64)):
        raise UsageError("zipf_kl needs a probability vector (non-negative, summing to 1)")
    p_sorted = p.sort(descending=True).values
    q = zipf_prior(len(p), exponent)
    return torch.special.xlogy(p_sorted, p_sorted).sum() - torch.special.xlogy(p_sorted, q).sum()


def zipf_fitness(
    features: torch.Tensor,
    num_clusters: int = 16,
    exponent: float = 1.0,
    assignment: Assignment = "hard",
    variance: float = 0.5,
    normalize: bool = True,
    seed: int = 0,
) -> float:
    """The unsupervised fitness of a representation: k-means on ``features`` (N, D), then
    KL(p ‖ Zipf) of the cluster distribution (lower is better).

    Args:
        features: the representation of an unlabeled set, one row per clip.
        num_clusters: k of k-means.
        exponent: s of the Zipf prior.
        assignment: ``hard`` or ``soft`` cluster shares (:func:`cluster_distribution`).
        variance: σ² of the soft assignment.
        normalize: L2-normalise the features first (cosine k-means), so the fitness does not
            depend on their scale.
        seed: seed of the k-means initialisations.
    """
    x = features.detach().float()
    if normalize:
        x = F.normalize(x, dim=1)
    result = kmeans(x, num_clusters, seed=seed)
    return float(zipf_kl(cluster_distribution(x, result.centroids, assignment, variance), exponent))
