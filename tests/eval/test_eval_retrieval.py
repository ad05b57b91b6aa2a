"""Clip retrieval R@k by hand and against torchmetrics' per-query hit rate."""

from __future__ import annotations

import torch
from torchmetrics.functional.retrieval import retrieval_hit_rate

from zoo.eval.retrieval import clip_retrieval


def test_recall_at_k_by_hand():
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    gallery_labels = torch.tensor([0, 1, 2, 1])
    queries = torch.tensor([[1.0, 0.05], [0.1, 1.0], [-1.0, -0.2]])
    query_labels = torch.tensor([1, 2, 0])
    # q0 ranks g0 (0), g1 (1), ...: hit at 2. q1 ranks g2 (2): hit at 1. q2 ranks g3 (1), g2/g1..., class 0 last.
    got = clip_retrieval(queries, query_labels, gallery, gallery_labels, ks=(1, 2, 4))
    assert got == {"R@1": 100 / 3, "R@2": 200 / 3, "R@4": 100.0}


def test_matches_torchmetrics_hit_rate():
    g = torch.Generator().manual_seed(0)
    gallery, queries = torch.randn(40, 6, generator=g), torch.randn(15, 6, generator=g)
    gallery_labels, query_labels = (
        torch.randint(0, 5, (40,), generator=g),
        torch.randint(0, 5, (15,), generator=g),
    )
    got = clip_retrieval(queries, query_labels, gallery, gallery_labels, ks=(1, 5, 10), chunk_size=4)
    sims = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T
    for k in (1, 5, 10):
        rates = [retrieval_hit_rate(sims[i], gallery_labels == query_labels[i], top_k=k) for i in range(15)]
        assert abs(got[f"R@{k}"] - 100 * float(torch.stack(rates).mean())) < 1e-4
