"""Hashing retrieval: mAP of Hamming ranking, as in deep video hashing papers (DCVH, SSVH, DPSH).

Every query ranks the database by the Hamming distance between binary codes; a database item is
relevant when it has the query's label (single-label) or shares at least one label with it
(multi-label). AP is the mean precision at the rank of every relevant item; mAP@k keeps the first k
items and averages over the relevant items found there (the ``CalcTopMap`` convention of deep-hashing
code). A query with no relevant item (in its top k) has AP 0 and still counts in the mean.

Ties: Hamming distances take few values, so many items tie. Tied items keep database order (a stable
sort), which makes the figure deterministic; deep-hashing code uses an unstable ``argsort``, whose
order among ties is unspecified, so figures may differ from theirs where relevant and irrelevant
items tie.
"""

from __future__ import annotations

import torch

from zoo.errors import UsageError
from zoo.eval.retrieval import average_precision

__all__ = ["hamming_distances", "hashing_map"]


def _as_bits(codes: torch.Tensor, name: str) -> torch.Tensor:
    values = set(codes.unique().tolist())
    if not (values <= {-1, 1} or values <= {0, 1}):
        raise UsageError(
            f"{name} must hold binary codes in {{-1, 1}} or {{0, 1}}, found values {sorted(values)[:5]}"
        )
    return (codes > 0).float()


def hamming_distances(query_codes: torch.Tensor, database_codes: torch.Tensor) -> torch.Tensor:
    """(Q, N) number of differing bits between every query code and every database code.

    Args:
        query_codes: (Q, B) codes in {-1, 1} or {0, 1}.
        database_codes: (N, B) codes in {-1, 1} or {0, 1}.
    """
    if query_codes.shape[1:] != database_codes.shape[1:]:
        raise UsageError(
            f"query codes have {query_codes.shape[1:]} bits, database codes {database_codes.shape[1:]}"
        )
    query, database = _as_bits(query_codes, "query_codes"), _as_bits(database_codes, "database_codes")
    return (query @ (1 - database).T + (1 - query) @ database.T).round().long()


def _relevance(query_labels: torch.Tensor, database_labels: torch.Tensor) -> torch.Tensor:
    if query_labels.ndim == 1:  # (q,) class indices
        return query_labels[:, None] == database_labels[None, :]
    return (query_labels.float() @ database_labels.float().T) > 0  # (q, C) multi-hot: a shared label


@torch.no_grad()
def hashing_map(
    query_codes: torch.Tensor,
    query_labels: torch.Tensor,
    database_codes: torch.Tensor,
    database_labels: torch.Tensor,
    top_k: int | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """``{"mAP": ...}`` (``{"mAP@k": ...}`` with ``top_k``) of Hamming ranking, in percent.

    Args:
        query_codes: (Q, B) query codes in {-1, 1} or {0, 1}.
        query_labels: (Q,) class indices, or (Q, C) multi-hot labels.
        database_codes: (N, B) database codes in {-1, 1} or {0, 1}.
        database_labels: (N,) class indices, or (N, C) multi-hot labels.
        top_k: rank cut-off; None ranks the whole database.
        chunk_size: queries ranked at once.
    """
    if query_labels.ndim != database_labels.ndim or query_labels.shape[1:] != database_labels.shape[1:]:
        raise UsageError(
            f"query_labels {tuple(query_labels.shape)} and database_labels {tuple(database_labels.shape)} "
            "must both be class indices (1-D) or multi-hot with the same classes (2-D)"
        )
    for name, labels, codes in (
        ("query_labels", query_labels, query_codes),
        ("database_labels", database_labels, database_codes),
    ):
        if len(labels) != len(codes):
            raise UsageError(f"{name} has {len(labels)} rows for {len(codes)} codes")
    precisions = []
    for codes, labels in zip(query_codes.split(chunk_size), query_labels.split(chunk_size)):
        order = hamming_distances(codes, database_codes).argsort(dim=1, stable=True)  # (q, N), nearest first
        relevant = _relevance(labels, database_labels).gather(1, order)  # (q, N) in ranked order
        precisions.append(average_precision(relevant, top_k=top_k).nan_to_num(0.0))
    name = "mAP" if top_k is None else f"mAP@{top_k}"
    return {name: 100 * float(torch.cat(precisions).double().mean())}
