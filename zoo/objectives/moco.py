"""MoCo's queue logits with an extra intra-video negative, and the triplet form of BE / DSM.

* :func:`moco_logits` — He et al., CVPR 2020, Algorithm 1: ``[q·k₊, q·queue] / τ`` with the positive
  in column 0; Background Erasing (Wang et al., CVPR 2021) and DSM (Wang et al., AAAI 2021) append
  one column ``q·n``, a clip of the *same* video at another time (the hard negative that keeps the
  scene and changes the motion): ``[q·k₊, q·queue, q·n] / τ``.
* :func:`moco_loss` — cross-entropy of those logits with label 0 (``NCESoftmaxLoss`` of the BE/DSM code).
* :func:`intra_inter_triplet_loss` — the "(triplet)" variants of BE and DSM: a margin loss on
  (anchor, positive, intra-video negative) plus the same with the negatives of another sample
  (the batch flipped), Euclidean distance, margin 0.5.

The keys of the queue come from every rank (:class:`zoo.methods.memory.MemoryQueue` gathers them);
the logits here only read it. No Lightning, no files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.objectives.infonce import at_least_float32, fp32_logits

__all__ = ["intra_inter_triplet_loss", "moco_logits", "moco_loss"]


def _check_rows(name: str, x: torch.Tensor, like: torch.Tensor) -> None:
    if x.shape != like.shape:
        raise ValueError(f"{name} must be (B, D) like the queries {tuple(like.shape)}, got {tuple(x.shape)}")


def moco_logits(
    queries: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor,
    intra_negatives: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> torch.Tensor:
    """Logits ``[q·k₊, q·queue, (q·n)] / τ`` (B, 1 + K [+ 1]), the positive in column 0.

    The embeddings are used as given (MoCo and BE/DSM L2-normalise them in their heads). The keys
    and the queue carry no gradient; the intra-video negatives keep theirs (BE/DSM encode them with
    the online network).

    Args:
        queries: (B, D) q, from the online encoder.
        keys: (B, D) k₊, from the momentum encoder (detached here).
        queue: (K, D) past keys (detached here).
        intra_negatives: (B, D) n, a clip of the same video at another time; None for plain MoCo.
        temperature: τ (0.07 in MoCo and in the BE/DSM code).
    """
    if queries.ndim != 2:
        raise ValueError(f"queries must be (B, D), got {tuple(queries.shape)}")
    _check_rows("keys", keys, queries)
    if queue.ndim != 2 or queue.shape[1] != queries.shape[1]:
        raise ValueError(f"queue must be (K, {queries.shape[1]}), got {tuple(queue.shape)}")
    queries = at_least_float32(queries)  # the logits in float32 under autocast
    positive = (queries * keys.detach()).sum(dim=1, keepdim=True)  # (B, 1)
    columns = [positive, fp32_logits(queries, queue.detach())]  # (B, 1), (B, K)
    if intra_negatives is not None:
        _check_rows("intra_negatives", intra_negatives, queries)
        columns.append((queries * intra_negatives).sum(dim=1, keepdim=True))  # (B, 1)
    return torch.cat(columns, dim=1) / temperature


def moco_loss(
    queries: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor,
    intra_negatives: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> torch.Tensor:
    """InfoNCE of :func:`moco_logits` (MoCo eq. 1): cross-entropy with label 0, mean over the batch.

    Args:
        queries: (B, D) q.
        keys: (B, D) k₊.
        queue: (K, D) past keys.
        intra_negatives: (B, D) same-video negatives, or None.
        temperature: τ.
    """
    logits = moco_logits(queries, keys, queue, intra_negatives, temperature)
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def intra_inter_triplet_loss(
    anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float = 0.5
) -> torch.Tensor:
    """``T(a, p, n) + T(a, p, flip(n))``, T the mean hinge ``[‖a − p‖ − ‖a − n‖ + m]_+``.

    The second term takes sample ``B − 1 − i``'s negative for anchor ``i`` (the batch flipped), as
    the BE/DSM code does; distances are Euclidean with PyTorch's ``TripletMarginLoss`` eps (1e-6).

    Args:
        anchors: (B, D) the disturbed clips (erased or warped).
        positives: (B, D) the same clips, augmented independently.
        negatives: (B, D) clips of the same videos at other times.
        margin: m (0.5 in the BE/DSM code).
    """
    _check_rows("positives", positives, anchors)
    _check_rows("negatives", negatives, anchors)
    intra = F.triplet_margin_loss(anchors, positives, negatives, margin=margin, p=2)
    inter = F.triplet_margin_loss(anchors, positives, negatives.flip(0), margin=margin, p=2)
    return intra + inter
