"""Clip retrieval R@k (the protocol of Xu et al. 2019 used by DSM, CMD and others).

Every test clip queries the training clips by cosine similarity of their features; a query is a hit
at k when at least one of its k nearest training clips has the query's class. R@k is the percentage
of hits. (torchmetrics' ``retrieval_hit_rate`` computes the same per query; this is its batched
form, tested against it.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["clip_retrieval"]


@torch.no_grad()
def clip_retrieval(
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    gallery_features: torch.Tensor,
    gallery_labels: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10, 20),
    chunk_size: int = 1024,
) -> dict[str, float]:
    """``{"R@1": ..., "R@5": ...}`` in percent, queries against the gallery (cosine similarity)."""
    max_k = min(max(ks), len(gallery_features))
    gallery = F.normalize(gallery_features.float(), dim=1)
    hits_at = {k: 0 for k in ks}
    for query, labels in zip(
        F.normalize(query_features.float(), dim=1).split(chunk_size), query_labels.split(chunk_size)
    ):
        idx = (query @ gallery.T).topk(max_k, dim=1).indices  # (q, max_k), most similar first
        match = gallery_labels[idx] == labels[:, None]  # (q, max_k)
        for k in ks:
            hits_at[k] += int(match[:, :k].any(dim=1).sum())
    return {f"R@{k}": 100 * hits_at[k] / len(query_features) for k in ks}
