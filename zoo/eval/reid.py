"""Person / object re-identification: CMC rank-k and mAP, query against gallery (Market-1501, MARS).

The standard protocol (Zheng et al. ICCV 2015, and the evaluation of MARS and torchreid): each query
ranks the gallery by feature distance; gallery items of the query's identity seen by the query's
camera are removed from its ranking (they are too easy), as are items whose identity is listed in
``ignore_ids`` (the "junk" images, identity -1, of Market-1501 and MARS). CMC rank-k is the percentage
of queries with a correct match among the first k remaining items; AP is the mean precision at the
rank of every correct match, mAP its mean over queries. A query left with no correct match in the
gallery cannot be scored: it is skipped and counted in ``skipped_queries``. Ties in distance are
broken by gallery order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from zoo.errors import UsageError
from zoo.eval.retrieval import average_precision

__all__ = ["reid_metrics"]


def _distances(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "euclidean":
        return torch.cdist(query, gallery)
    if metric == "cosine":
        return 1 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).T
    raise UsageError(f"metric must be 'euclidean' or 'cosine', not {metric!r}")


@torch.no_grad()
def reid_metrics(
    query_features: torch.Tensor,
    query_ids: torch.Tensor,
    query_cameras: torch.Tensor,
    gallery_features: torch.Tensor,
    gallery_ids: torch.Tensor,
    gallery_cameras: torch.Tensor,
    ranks: Sequence[int] = (1, 5, 10, 20),
    metric: Literal["euclidean", "cosine"] = "euclidean",
    ignore_ids: Sequence[int] = (),
    chunk_size: int = 1024,
) -> dict[str, float]:
    """``rank-1``, ``rank-5``, ... and ``mAP`` in percent, plus ``evaluated_queries`` and ``skipped_queries``.

    Args:
        query_features: (Q, D) query embeddings.
        query_ids: (Q,) identity of each query.
        query_cameras: (Q,) camera of each query.
        gallery_features: (G, D) gallery embeddings.
        gallery_ids: (G,) identity of each gallery item.
        gallery_cameras: (G,) camera of each gallery item.
        ranks: the k of the CMC rank-k figures.
        metric: feature distance, ``"euclidean"`` or ``"cosine"`` (one minus cosine similarity).
        ignore_ids: gallery identities removed from every ranking (junk images).
        chunk_size: queries ranked at once.
    """
    for name, tensor, size in (
        ("query_ids", query_ids, len(query_features)),
        ("query_cameras", query_cameras, len(query_features)),
        ("gallery_ids", gallery_ids, len(gallery_features)),
        ("gallery_cameras", gallery_cameras, len(gallery_features)),
    ):
        if tensor.shape != (size,):
            raise UsageError(f"{name} has shape {tuple(tensor.shape)}, expected ({size},)")
    gallery = gallery_features.float()
    ignored = torch.isin(gallery_ids, torch.as_tensor(list(ignore_ids), dtype=gallery_ids.dtype))  # (G,)
    hits_at = dict.fromkeys(ranks, 0)
    precisions, skipped = [], 0
    for query, ids, cameras in zip(
        query_features.float().split(chunk_size), query_ids.split(chunk_size), query_cameras.split(chunk_size)
    ):
        order = _distances(query, gallery, metric).argsort(dim=1, stable=True)  # (q, G), nearest first
        same_id = gallery_ids[order] == ids[:, None]  # (q, G)
        valid = ~(same_id & (gallery_cameras[order] == cameras[:, None])) & ~ignored[order]
        relevant = same_id & valid
        scored = relevant.any(dim=1)  # (q,)
        skipped += int((~scored).sum())
        rank_among_valid = valid.cumsum(dim=1)  # (q, G): 1-based rank after removals
        first_hit = rank_among_valid.masked_fill(~relevant, len(gallery) + 1).amin(dim=1)[scored]
        for k in ranks:
            hits_at[k] += int((first_hit <= k).sum())
        precisions.append(average_precision(relevant, valid)[scored])
    evaluated = len(query_features) - skipped
    if evaluated == 0:
        raise UsageError("no query has a correct match in the gallery from another camera")
    metrics = {f"rank-{k}": 100 * hits_at[k] / evaluated for k in ranks}
    metrics["mAP"] = 100 * float(torch.cat(precisions).double().mean())
    return metrics | {"evaluated_queries": float(evaluated), "skipped_queries": float(skipped)}
