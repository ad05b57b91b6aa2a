"""Clustering quality of frozen features: k-means, then NMI, ARI, Hungarian-matched accuracy and purity.

k-means is :func:`zoo.objectives.kmeans.kmeans` (faiss, else scikit-learn). NMI and ARI come from
torchmetrics (``torchmetrics.functional.clustering``); the accuracy matches clusters to classes
one-to-one with scipy's ``linear_sum_assignment`` (as in DeepCluster/SeLa).
"""

from __future__ import annotations

import warnings

import torch
from scipy.optimize import linear_sum_assignment
from torchmetrics.functional.clustering import adjusted_rand_score, normalized_mutual_info_score

from zoo.objectives.kmeans import kmeans

__all__ = ["cluster_features", "clustering_scores"]


def clustering_scores(assignments: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """NMI (arithmetic normalisation), ARI, best one-to-one matched accuracy and purity (percent).

    Purity gives each cluster its most frequent class (many clusters may share one), so it rewards
    over-clustering; the matched accuracy does not (SeLaVi reports both).
    """
    assignments, labels = assignments.long(), labels.long()
    with warnings.catch_warnings():  # torchmetrics builds its contingency table as a sparse tensor
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        nmi = float(normalized_mutual_info_score(assignments, labels, average_method="arithmetic"))
        ari = float(adjusted_rand_score(assignments, labels))
    counts = torch.zeros(int(assignments.max()) + 1, int(labels.max()) + 1, dtype=torch.long)
    counts.index_put_((assignments, labels), torch.ones_like(labels), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    accuracy = 100 * float(counts[rows, cols].sum()) / len(labels)
    purity = 100 * float(counts.max(dim=1).values.sum()) / len(labels)
    return {"nmi": nmi, "ari": ari, "accuracy": accuracy, "purity": purity}


def cluster_features(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_clusters: int | None = None,
    normalize: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """k-means on (L2-normalised) features with as many clusters as classes by default, then the scores."""
    num_clusters = num_clusters or int(labels.max()) + 1
    result = kmeans(features, num_clusters, seed=seed, normalize=normalize)
    return clustering_scores(result.assignments, labels)
