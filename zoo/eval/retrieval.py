"""Retrieval metrics: clip retrieval R@k, text↔video retrieval, and average precision of a ranking.

Clip retrieval (the protocol of Xu et al. 2019 used by DSM, CMD and others): every test clip queries
the training clips by cosine similarity of their features; a query is a hit at k when at least one of
its k nearest training clips has the query's class. R@k is the percentage of hits. (torchmetrics'
``retrieval_hit_rate`` computes the same per query; this is its batched form, tested against it.)

Text↔video retrieval (MSR-VTT, VATEX, YouCook2 protocol) with several captions per video: text→video
ranks all videos for every caption; video→text ranks all captions for every video and takes the rank
of the best-ranked of its own captions. Ties are counted against the query: the rank of the correct
item is one plus the number of wrong items scoring at least as high, so a model that gives every item
the same score gets the worst rank, not the best.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import UsageError

__all__ = ["average_precision", "clip_retrieval", "ranks_to_metrics", "text_video_retrieval"]


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


def ranks_to_metrics(ranks: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k in percent, median rank and mean rank of the correct item, from 1-based ranks.

    Args:
        ranks: (Q,) rank of the correct item for every query, 1 = first.
        ks: cut-offs of R@k.
    """
    ranks_np = ranks.double().cpu().numpy()
    metrics = {f"R@{k}": 100 * float((ranks_np <= k).mean()) for k in ks}
    metrics["MedR"] = float(np.median(ranks_np))
    metrics["MeanR"] = float(ranks_np.mean())
    return metrics


def _ranks_of_best_match(scores: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's best-scoring matching column; ties with wrong columns count against it.

    Args:
        scores: (Q, G) similarity of every query to every gallery item.
        match: (Q, G) True where the gallery item is a correct answer; every row has at least one.
    """
    best = scores.masked_fill(~match, -torch.inf).amax(dim=1)  # (Q,)
    return 1 + ((scores >= best[:, None]) & ~match).sum(dim=1)


@torch.no_grad()
def text_video_retrieval(
    similarity: torch.Tensor,
    caption_to_video: torch.Tensor,
    languages: Sequence[str] | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Text→video and video→text R@k (percent), median and mean rank, overall and per language.

    Keys are ``text_to_video/R@1``, ..., ``video_to_text/MedR``, ``video_to_text/MeanR``; with
    ``languages``, the same again per language prefixed by it (``de/text_to_video/R@1``). Per language,
    text→video ranks all videos for that language's captions, and video→text ranks that language's
    captions for every video that has at least one of them. Video→text skips videos without captions.

    Args:
        similarity: (N_text, N_video) score of every caption against every video, higher is closer
            (e.g. ``normalize(text) @ normalize(video).T``).
        caption_to_video: (N_text,) index of each caption's video, in ``[0, N_video)``.
        languages: language tag of each caption (N_text of them); None for one overall result only.
        ks: cut-offs of R@k.
    """
    num_texts, num_videos = similarity.shape
    caption_to_video = torch.as_tensor(caption_to_video, device=similarity.device).long()
    if caption_to_video.shape != (num_texts,):
        raise UsageError(
            f"caption_to_video has shape {tuple(caption_to_video.shape)}; "
            f"similarity has {num_texts} captions, so it needs shape ({num_texts},)"
        )
    if num_texts and (caption_to_video.min() < 0 or caption_to_video.max() >= num_videos):
        raise UsageError(f"caption_to_video holds a video index outside [0, {num_videos})")
    if languages is not None and len(languages) != num_texts:
        raise UsageError(f"languages has {len(languages)} tags for {num_texts} captions")
    similarity = similarity.float()
    # (N_text, N_video): True where the video is the caption's own
    owns = caption_to_video[:, None] == torch.arange(num_videos, device=similarity.device)

    def both_directions(captions: torch.Tensor) -> dict[str, float]:
        sim, own = similarity[captions], owns[captions]  # (n, N_video)
        has_caption = own.any(dim=0)  # (N_video,)
        text_ranks = _ranks_of_best_match(sim, own)
        video_ranks = _ranks_of_best_match(sim.T[has_caption], own.T[has_caption])
        text_metrics = ranks_to_metrics(text_ranks, ks)
        video_metrics = ranks_to_metrics(video_ranks, ks)
        return {f"text_to_video/{k}": v for k, v in text_metrics.items()} | {
            f"video_to_text/{k}": v for k, v in video_metrics.items()
        }

    metrics = both_directions(torch.arange(num_texts, device=similarity.device))
    for language in sorted(set(languages or ())):
        captions = torch.tensor([i for i, tag in enumerate(languages) if tag == language], dtype=torch.long)
        per_language = both_directions(captions.to(similarity.device))
        metrics |= {f"{language}/{k}": v for k, v in per_language.items()}
    return metrics


def average_precision(
    relevance: torch.Tensor, valid: torch.Tensor | None = None, top_k: int | None = None
) -> torch.Tensor:
    """Average precision of each ranked list: mean of the precision at the rank of every relevant item.

    Invalid positions (``valid`` False) are removed from the list before ranking. With ``top_k`` only
    the first ``top_k`` valid positions count and the mean runs over the relevant items found there
    (the AP@k of deep-hashing papers). Lists with no relevant item get NaN.

    Args:
        relevance: (Q, N) True where the item at that position of query q's ranking is relevant, the
            best-ranked item first.
        valid: (Q, N) False for positions to remove from the ranking; None keeps them all.
        top_k: the cut-off; None for the whole list.
    """
    relevance = relevance.bool()
    valid = torch.ones_like(relevance) if valid is None else valid.bool()
    position = valid.cumsum(dim=1)  # (Q, N): 1-based rank among valid items
    if top_k is not None:
        valid = valid & (position <= top_k)
    hits = relevance & valid  # (Q, N)
    precision = hits.cumsum(dim=1) / position.clamp(min=1)  # (Q, N): precision at each position
    num_hits = hits.sum(dim=1)  # (Q,)
    summed = (precision * hits).sum(dim=1)
    return torch.where(num_hits > 0, summed / num_hits.clamp(min=1), torch.nan)
