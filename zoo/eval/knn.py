"""Weighted k-nearest-neighbour classification on frozen features (cosine similarity).

Instance Discrimination (Wu et al., CVPR 2018, §3.5 / eq. 8) and solo-learn's online kNN: the k most
similar training samples vote for their class with weight ``exp(s/τ)`` (``temperature=None``: one
vote each); the class with the largest summed weight wins (ties: the smallest class index).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

__all__ = ["knn_accuracy", "knn_scores"]


@torch.no_grad()
def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    k: int = 20,
    temperature: float | None = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores (Q, C): summed votes of each query's k nearest training samples."""
    num_classes = int(num_classes if num_classes is not None else train_labels.max() + 1)
    k = min(k, len(train_features))
    train = F.normalize(train_features.float(), dim=1)
    scores = []
    for query in F.normalize(query_features.float(), dim=1).split(chunk_size):
        sim, idx = (query @ train.T).topk(k, dim=1)  # (q, k)
        weights = torch.ones_like(sim) if temperature is None else (sim / temperature).exp()
        votes = torch.zeros(len(query), num_classes, device=query.device)
        scores.append(votes.scatter_add_(1, train_labels[idx].long(), weights))
    return torch.cat(scores)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float | None = 0.07,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Top-1 (and top-5 when there are more than 5 classes) kNN accuracy in percent."""
    num_classes = int(num_classes or max(train_labels.max(), query_labels.max()) + 1)
    scores = knn_scores(train_features, train_labels, query_features, k, temperature, num_classes)
    result = {"top1": 100 * float(multiclass_accuracy(scores, query_labels, num_classes, average="micro"))}
    if num_classes > 5:
        result["top5"] = 100 * float(
            multiclass_accuracy(scores, query_labels, num_classes, average="micro", top_k=5)
        )
    return result
