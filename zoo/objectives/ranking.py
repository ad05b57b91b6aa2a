"""Ranking losses: batch-hard triplet (re-identification) and bidirectional max-margin (video–text).

* :func:`batch_hard_triplet_loss` — Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss":
  for every anchor, its hardest positive (farthest sample of its identity) and its hardest negative
  (closest sample of another identity) in the batch, with a hinge margin or the soft margin
  ``log(1 + exp(·))``. The batch is P identities × K samples (``labels``).
* :func:`max_margin_ranking_loss` — the hinge ranking loss of visual-semantic embeddings over a
  similarity matrix whose diagonal holds the matching pairs, in both retrieval directions, summed over
  negatives (VSE0) or taken at the hardest negative (VSE++, Faghri et al. 2018).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from zoo.objectives.infonce import fp32_logits, fp32_normalize

__all__ = ["batch_hard_triplet_loss", "max_margin_ranking_loss", "pairwise_euclidean_distance"]


def pairwise_euclidean_distance(x: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Distances between the rows of ``x`` (N, D) -> (N, N), via ``‖a‖² + ‖b‖² − 2ab``.

    Squared distances are clamped at 1e-12 before the square root so that coincident points get a
    finite gradient (zero) instead of NaN.

    Args:
        x: (N, D) embeddings.
        squared: return squared distances.
    """
    gram = fp32_logits(x, x)  # (N, N) float32 under autocast: in bf16 the difference below cancels to noise
    norms = gram.diagonal()  # (N,)
    distance = (norms[:, None] + norms[None, :] - 2 * gram).clamp_min(1e-12)  # (N, N)
    return distance if squared else distance.sqrt()


def batch_hard_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float | None = 0.3,
    *,
    normalize: bool = False,
    squared: bool = False,
) -> torch.Tensor:
    """Batch-hard triplet loss ``L_BH`` of Hermans et al. 2017, averaged over anchors.

    ``L = mean_a [m + max_p D(a, p) − min_n D(a, n)]_+``, or ``softplus(max_p D(a, p) − min_n D(a, n))``
    with ``margin=None``. Positives are the other samples with the anchor's label (the anchor itself is
    not one); anchors with no positive or no negative in the batch are left out of the mean.

    Args:
        embeddings: (N, D) features.
        labels: (N,) identity of every sample.
        margin: hinge margin m (re-ID practice: 0.3), or None for the soft margin.
        normalize: L2-normalise the embeddings first.
        squared: use squared Euclidean distances (the paper recommends plain ones).
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"embeddings must be (N, D) and labels (N,); got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
        )
    if normalize:
        embeddings = fp32_normalize(embeddings)
    distance = pairwise_euclidean_distance(embeddings, squared)  # (N, N)
    same = labels[:, None] == labels[None, :]  # (N, N)
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    negative = ~same
    valid = positive.any(dim=1) & negative.any(dim=1)  # (N,)
    if not bool(valid.any()):
        raise ValueError(
            "batch_hard_triplet_loss needs an anchor with another sample of its label and one of another "
            "label in the batch (sample P identities × K ≥ 2 instances)"
        )
    hardest_positive = distance.masked_fill(~positive, float("-inf")).amax(dim=1)[valid]  # (A,)
    hardest_negative = distance.masked_fill(~negative, float("inf")).amin(dim=1)[valid]  # (A,)
    gap = hardest_positive - hardest_negative
    if margin is None:
        return F.softplus(gap).mean()
    return F.relu(margin + gap).mean()


def max_margin_ranking_loss(
    similarity: torch.Tensor,
    margin: float = 0.2,
    *,
    hardest_negative: bool = False,
    symmetric: bool = True,
    positive_mask: torch.Tensor | None = None,
    reduction: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """Bidirectional hinge ranking loss over ``similarity`` (N, N), matching pairs on the diagonal.

    For anchor ``i`` of modality a (row) and negative ``j``: ``[m − s_ii + s_ij]_+``; for anchor ``j`` of
    modality b (column) and negative ``i``: ``[m − s_jj + s_ij]_+``. VSE++'s ``ℓ_SH`` sums them over
    negatives; its ``ℓ_MH`` keeps the hardest negative of each anchor.

    Args:
        similarity: (N, N) scores ``s_ij = ⟨a_i, b_j⟩`` (e.g. video i, caption j).
        margin: m (VSE++: 0.2).
        hardest_negative: keep only each anchor's largest violation (VSE++) instead of the sum (VSE0).
        symmetric: add the b→a direction (column anchors).
        positive_mask: (N, N) bool, extra pairs that are not negatives (e.g. another caption of the same
            video in the batch); the diagonal always is.
        reduction: "sum" over anchors (VSE++ code) or "mean" (that sum divided by N).
    """
    n = similarity.shape[0]
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be square (N, N); got {tuple(similarity.shape)}")
    not_negative = torch.eye(n, dtype=torch.bool, device=similarity.device)
    if positive_mask is not None:
        if positive_mask.shape != (n, n):
            raise ValueError(f"positive_mask must be ({n}, {n}); got {tuple(positive_mask.shape)}")
        not_negative = not_negative | positive_mask.bool()
    positive_score = similarity.diagonal()  # (N,)
    row_cost = F.relu(margin + similarity - positive_score[:, None]).masked_fill(not_negative, 0.0)
    costs = [row_cost.amax(dim=1) if hardest_negative else row_cost.sum(dim=1)]  # a_i anchors: (N,)
    if symmetric:
        column_cost = F.relu(margin + similarity - positive_score[None, :]).masked_fill(not_negative, 0.0)
        costs.append(column_cost.amax(dim=0) if hardest_negative else column_cost.sum(dim=0))  # b_j anchors
    total = torch.stack(costs).sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / n
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
