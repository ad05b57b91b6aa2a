"""Clustering quality of frozen features: k-means, then NMI, ARI and Hungarian-matched accuracy.

NMI and ARI come from torchmetrics (``torchmetrics.functional.clustering``); the accuracy matches
clusters to classes one-to-one with scipy's ``linear_sum_assignment`` (as in DeepCluster/SeLa).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchmetrics.functional.clustering import adjusted_rand_score, normalized_mutual_info_score

__all__ = ["cluster_features", "clustering_scores", "kmeans"]


@torch.no_grad()
def kmeans(
    features: torch.Tensor, num_clusters: int, iters: int = 100, restarts: int = 5, seed: int = 0
) -> torch.Tensor:
    """Cluster assignments (N,) by Lloyd's k-means with k-means++ seeding; best inertia of ``restarts``."""
    x = features.float()
    g = torch.Generator().manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        centers = x[torch.randint(len(x), (1,), generator=g)]
        for _ in range(num_clusters - 1):  # k-means++: next centre with probability ∝ squared distance
            d2 = torch.cdist(x, centers).min(dim=1).values.square()
            weights = d2 if d2.sum() > 0 else torch.ones_like(d2)  # all points on the centres: any will do
            centers = torch.cat([centers, x[torch.multinomial(weights, 1, generator=g)]])
        for _ in range(iters):
            assign = torch.cdist(x, centers).argmin(dim=1)
            counts = torch.bincount(assign, minlength=num_clusters).unsqueeze(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, x)
            new = torch.where(
                counts > 0, sums / counts.clamp_min(1), centers
            )  # an empty cluster keeps its centre
            if torch.allclose(new, centers):
                break
            centers = new
        inertia = float(torch.cdist(x, centers).min(dim=1).values.square().sum())
        if inertia < best_inertia:
            best, best_inertia = torch.cdist(x, centers).argmin(dim=1), inertia
    return best


def clustering_scores(assignments: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """NMI (arithmetic normalisation), ARI and best one-to-one matched accuracy (percent)."""
    assignments, labels = assignments.long(), labels.long()
    with warnings.catch_warnings():  # torchmetrics builds its contingency table as a sparse tensor
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        nmi = float(normalized_mutual_info_score(assignments, labels, average_method="arithmetic"))
        ari = float(adjusted_rand_score(assignments, labels))
    counts = torch.zeros(int(assignments.max()) + 1, int(labels.max()) + 1, dtype=torch.long)
    counts.index_put_((assignments, labels), torch.ones_like(labels), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    accuracy = 100 * float(counts[rows, cols].sum()) / len(labels)
    return {"nmi": nmi, "ari": ari, "accuracy": accuracy}


def cluster_features(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_clusters: int | None = None,
    normalize: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """k-means on (L2-normalised) features with as many clusters as classes by default, then the scores."""
    num_clusters = num_clusters or int(labels.max()) + 1
    x = F.normalize(features.float(), dim=1) if normalize else features
    return clustering_scores(kmeans(x, num_clusters, seed=seed), labels)
