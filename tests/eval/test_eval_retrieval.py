"""Retrieval metrics by hand and against independent computations (loops, torchmetrics, scikit-learn)."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import average_precision_score
from torchmetrics.functional.retrieval import retrieval_hit_rate

from zoo.errors import UsageError
from zoo.eval.retrieval import average_precision, clip_retrieval, text_video_retrieval


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


def _loop_ranks(similarity, caption_to_video):
    """Ranks by brute force: count, item by item, the wrong items scoring at least as high."""
    sim = similarity.tolist()
    owner = caption_to_video.tolist()
    text_ranks = []
    for t, row in enumerate(sim):
        correct = row[owner[t]]
        text_ranks.append(1 + sum(1 for v, s in enumerate(row) if v != owner[t] and s >= correct))
    video_ranks = []
    for v in range(len(sim[0])):
        mine = [t for t in range(len(sim)) if owner[t] == v]
        if not mine:
            continue
        best = max(sim[t][v] for t in mine)
        video_ranks.append(1 + sum(1 for t in range(len(sim)) if owner[t] != v and sim[t][v] >= best))
    return text_ranks, video_ranks


def _loop_metrics(ranks, ks):
    ranks = sorted(ranks)
    n = len(ranks)
    median = ranks[n // 2] if n % 2 else (ranks[n // 2 - 1] + ranks[n // 2]) / 2
    out = {f"R@{k}": 100 * sum(r <= k for r in ranks) / n for k in ks}
    return out | {"MedR": median, "MeanR": sum(ranks) / n}


def test_text_video_retrieval_by_hand():
    # 3 videos; captions 0,1 -> video 0, caption 2 -> video 1, caption 3 -> video 2
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.2],  # caption 0: own video 0 first -> rank 1
            [0.3, 0.5, 0.4],  # caption 1: video 0 behind 1 and 2 -> rank 3
            [0.2, 0.2, 0.1],  # caption 2: tie with video 0 counts against it -> rank 2
            [0.0, 0.6, 0.7],  # caption 3: own video 2 first -> rank 1
        ]
    )
    caption_to_video = torch.tensor([0, 0, 1, 2])
    got = text_video_retrieval(similarity, caption_to_video, ks=(1, 2))
    # text->video ranks [1, 3, 2, 1]
    assert got["text_to_video/R@1"] == 50.0 and got["text_to_video/R@2"] == 75.0
    assert got["text_to_video/MedR"] == 1.5 and got["text_to_video/MeanR"] == 7 / 4
    # video 0: best own caption 0 (0.9) beats all -> 1; video 1: caption 2 (0.2) behind caption 1 (0.5)
    # and caption 3 (0.6) -> 3; video 2: caption 3 (0.7) first -> 1
    assert got["video_to_text/R@1"] == pytest.approx(200 / 3) == got["video_to_text/R@2"]
    assert got["video_to_text/MedR"] == 1.0 and got["video_to_text/MeanR"] == pytest.approx(5 / 3)


def test_constant_scores_get_the_worst_rank():
    got = text_video_retrieval(torch.zeros(6, 3), torch.tensor([0, 0, 1, 1, 2, 2]), ks=(1,))
    assert got["text_to_video/R@1"] == 0.0 and got["text_to_video/MedR"] == 3.0
    assert got["video_to_text/R@1"] == 0.0 and got["video_to_text/MedR"] == 5.0


def test_text_video_retrieval_matches_loops_per_language():
    g = torch.Generator().manual_seed(1)
    num_videos, num_texts = 12, 40
    caption_to_video = torch.randint(0, num_videos, (num_texts,), generator=g)
    # coarse scores so that ties happen
    similarity = torch.randint(0, 6, (num_texts, num_videos), generator=g).float()
    languages = [("en", "de", "zh")[i % 3] for i in range(num_texts)]
    ks = (1, 5, 10)
    got = text_video_retrieval(similarity, caption_to_video, languages=languages, ks=ks)
    groups = {"": list(range(num_texts))} | {
        f"{lang}/": [i for i in range(num_texts) if languages[i] == lang] for lang in ("en", "de", "zh")
    }
    for prefix, captions in groups.items():
        text_ranks, video_ranks = _loop_ranks(similarity[captions], caption_to_video[captions])
        for direction, ranks in (("text_to_video", text_ranks), ("video_to_text", video_ranks)):
            for name, value in _loop_metrics(ranks, ks).items():
                assert got[f"{prefix}{direction}/{name}"] == pytest.approx(value), (prefix, direction, name)
    assert len(got) == 4 * 2 * (len(ks) + 2)


def test_text_video_retrieval_rejects_mismatched_captions():
    with pytest.raises(UsageError, match="caption_to_video"):
        text_video_retrieval(torch.zeros(4, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(UsageError, match="outside"):
        text_video_retrieval(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(UsageError, match="languages"):
        text_video_retrieval(torch.zeros(2, 3), torch.tensor([0, 1]), languages=["en"])


def test_average_precision_matches_sklearn():
    g = torch.Generator().manual_seed(2)
    scores = torch.rand(7, 30, generator=g)  # continuous: no ties
    relevant = torch.rand(7, 30, generator=g) < 0.3
    relevant[:, 0] = True  # every query has a relevant item
    order = scores.argsort(dim=1, descending=True)
    got = average_precision(relevant.gather(1, order))
    expected = [average_precision_score(relevant[q].numpy(), scores[q].numpy()) for q in range(7)]
    assert got.tolist() == pytest.approx(expected)


def test_average_precision_invalid_positions_and_top_k_by_hand():
    relevance = torch.tensor([[True, False, True, False, True], [False, False, False, False, False]])
    valid = torch.tensor([[True, True, False, True, True], [True] * 5])
    # query 0 after removing position 2: [R, -, -, R] -> (1/1 + 2/4) / 2
    got = average_precision(relevance, valid)
    assert got[0] == pytest.approx(0.75) and torch.isnan(got[1])
    # top-2 of the full list [R, -, R, -, R]: only the first relevant item counts -> 1
    assert average_precision(relevance, top_k=2)[0] == 1.0
    # top-3: (1/1 + 2/3) / 2
    assert average_precision(relevance, top_k=3)[0] == pytest.approx((1 + 2 / 3) / 2)
