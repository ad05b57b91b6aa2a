"""The GDT contrastive loss over generalized data transformations (Patrick et al., ICCV 2021).

GDT (https://arxiv.org/abs/2003.04298, §3) learns from pairs of transformations of one sample: the
cross-modal pair (video v, audio a) of a clip and the same pair after a transformation T (time
reversal, a time shift). Each transformation is either

* ``"invariant"``: the representation should not change under T, so v's positive is the *transformed*
  audio a^T (and a's positive v^T), averaged with the untransformed ("basecase") loss;
* ``"variant"``: the representation should tell T apart, so v's positive is its own a and the local
  transformed a^T is a *hard negative*;
* ``"none"``: not used.

One directional term is the InfoNCE of ``get_loss`` in the original (``gdt_helper.py``):
logits ``[q·k_jᵀ for the local keys j, q·n for the negatives n] / t``, the positive of query i the key i.
Keys and negatives are detached — gradients flow through the queries alone — and the negatives are
the features of every *other* rank (both transformations of their samples), plus the hard
negatives of a variant transformation. A pair loss averages the two modalities' terms for both
orderings of (original, transformed); a hypothesis averages its pair losses (eq. 4 of the paper as
``main_gdt.py`` computes it: ½(L + L_base) for one invariant transformation, the mean of the 4, 5
or 6 terms for two).

The nine hypotheses of the original (``--hypothesis 1..9``) are :data:`HYPOTHESES`. With several
ranks, the original's ``get_pos_neg`` extends the collected negative lists in place, so later calls
of a step see duplicated negatives; this module uses the intended set (each other-rank feature once)
and, in one process, the local batch alone (the original fails there).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from zoo.objectives.distributed import gather_no_grad, gather_uneven, get_rank, get_world_size
from zoo.objectives.infonce import fp32_logits

__all__ = [
    "HYPOTHESES",
    "GDTPair",
    "Relation",
    "cross_view_nce_loss",
    "gdt_hypothesis_loss",
    "gdt_nce_loss",
    "gdt_pair_loss",
    "other_ranks",
    "stica_crop_loss",
]

Relation = Literal["none", "invariant", "variant"]

HYPOTHESES: dict[int, tuple[Relation, Relation]] = {
    1: ("none", "none"),  # cross-modal baseline
    2: ("variant", "none"),
    3: ("invariant", "none"),
    4: ("none", "variant"),
    5: ("none", "invariant"),
    6: ("variant", "variant"),
    7: ("invariant", "variant"),
    8: ("variant", "invariant"),
    9: ("invariant", "invariant"),
}
"""Hypothesis number of the original -> (time-reversal relation, time-shift relation)."""


class GDTPair(NamedTuple):
    """L2-normalised embeddings of one transformation of the batch: video (N, D) and audio (N, D)."""

    video: torch.Tensor
    audio: torch.Tensor


@torch.no_grad()
def other_ranks(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` (N, D) from every rank but this one; empty in one process.

    Ranks may hold different numbers of rows (samples without audio dropped from a batch).
    """
    if get_world_size() == 1:
        return x.new_zeros((0, *x.shape[1:]))
    lengths = gather_no_grad(torch.tensor([len(x)], device=x.device)).tolist()
    start = sum(lengths[: get_rank()])
    gathered = gather_uneven(x)  # (ΣN, D), rank-major
    return torch.cat([gathered[:start], gathered[start + len(x) :]])


def gdt_nce_loss(
    query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy of ``[query·keyᵀ, query·negativesᵀ] / t`` with query i's positive at key i.

    Args:
        query: (N, D) anchors (the only side that receives gradients in GDT).
        key: (N, D) local keys; the other local keys are negatives.
        negatives: (K, D) further negatives (K may be 0).
        temperature: t (0.07 in GDT).
    """
    local, remote = fp32_logits(query, key, temperature), fp32_logits(query, negatives, temperature)
    logits = torch.cat([local, remote], dim=1)  # (N, N + K), float32 under autocast
    return F.cross_entropy(logits, torch.arange(len(query), device=query.device))


def gdt_pair_loss(
    pair: GDTPair,
    transformed: GDTPair | None = None,
    relation: Literal["basecase", "invariant", "variant"] = "basecase",
    temperature: float = 0.07,
    others: tuple[GDTPair, ...] = (),
) -> torch.Tensor:
    """The loss of one transformation: the mean of v→a and a→v for (pair, transformed) and (transformed, pair).

    Args:
        pair: the untransformed embeddings.
        transformed: the embeddings after T (``None``: the cross-modal baseline, two terms).
        relation: ``basecase`` (positive: the same transformation's other modality), ``invariant``
            (positive: the other modality after the other transformation) or ``variant`` (basecase
            positives, the local other transformation as hard negatives).
        temperature: t.
        others: the other ranks' embeddings of ``pair`` and ``transformed`` (:func:`other_ranks`), negatives.
    """
    if relation != "basecase" and transformed is None:
        raise ValueError(f"the {relation} relation needs the transformed embeddings")
    sets = [pair] if transformed is None else [pair, transformed]
    remote_audio = torch.cat([o.audio for o in others]) if others else pair.audio[:0]
    remote_video = torch.cat([o.video for o in others]) if others else pair.video[:0]
    terms = []
    for i, (video, audio) in enumerate(sets):
        other = sets[1 - i] if transformed is not None else None
        key_of_video, key_of_audio = (other.audio, other.video) if relation == "invariant" else (audio, video)
        negatives_of_video, negatives_of_audio = remote_audio, remote_video
        if relation == "variant":  # hard negatives: this sample's other transformation
            negatives_of_video = torch.cat([remote_audio, other.audio])
            negatives_of_audio = torch.cat([remote_video, other.video])
        terms.append(gdt_nce_loss(video, key_of_video.detach(), negatives_of_video.detach(), temperature))
        terms.append(gdt_nce_loss(audio, key_of_audio.detach(), negatives_of_audio.detach(), temperature))
    return torch.stack(terms).mean()


def gdt_hypothesis_loss(
    views: dict[str, GDTPair],
    reversal: Relation,
    shift: Relation,
    temperature: float = 0.07,
    gather: bool = True,
) -> torch.Tensor:
    """The GDT loss of one hypothesis (a time-reversal and a time-shift relation, :data:`HYPOTHESES`).

    Args:
        views: embeddings by transformation: ``clip``, plus ``reversed`` (time reversal), ``shifted``
            (a clip at another time of the same video) and ``shifted_reversed`` as the relations need.
        reversal: the relation of the representation to time reversal.
        shift: its relation to a time shift.
        temperature: t.
        gather: the other ranks' embeddings are negatives (a no-op in one process).
    """
    needed = ["clip"]
    needed += ["reversed"] if reversal != "none" else []
    needed += ["shifted"] if shift != "none" else []
    needed += ["shifted_reversed"] if reversal != "none" and shift != "none" else []
    missing = sorted(set(needed) - set(views))
    if missing:
        raise ValueError(f"reversal={reversal}, shift={shift} needs the views {missing}; got {sorted(views)}")
    others = {
        name: GDTPair(other_ranks(views[name].video), other_ranks(views[name].audio)) if gather else None
        for name in needed
    }

    def pair_loss(a: str, b: str | None, relation: str) -> torch.Tensor:
        remote = tuple(others[n] for n in (a, b) if n is not None and others[n] is not None)
        return gdt_pair_loss(views[a], views[b] if b else None, relation, temperature, remote)

    if reversal == "none" and shift == "none":
        return pair_loss("clip", None, "basecase")
    terms = []
    transformations = []
    if reversal != "none":
        pairs = [("clip", "reversed")] + [("shifted", "shifted_reversed")] * (shift != "none")
        transformations.append((reversal, pairs))
    if shift != "none":
        pairs = [("clip", "shifted")] + [("reversed", "shifted_reversed")] * (reversal != "none")
        transformations.append((shift, pairs))
    for relation, pairs in transformations:
        terms += [pair_loss(a, b, relation) for a, b in pairs]
        if relation == "invariant":  # averaged with the untransformed loss of the same pair
            terms.append(pair_loss(*pairs[0], "basecase"))
    return torch.stack(terms).mean()


# --- STiCA (Patrick et al. 2021, https://arxiv.org/abs/2103.10211), on GDT's code base ------------------


def cross_view_nce_loss(
    first: torch.Tensor,
    second: torch.Tensor,
    temperature: float,
    symmetric: bool = True,
    gather: bool = True,
) -> torch.Tensor:
    """The original STiCA ``gdt_loss(first, second)``: ``second`` queries ``first`` (+ the other ranks'), detached.

    With ``symmetric`` the mean with ``first`` querying ``second``.

    Args:
        first: (N, D) keys of the first direction (e.g. video, or a large crop).
        second: (N, D) queries of the first direction (e.g. audio, or a small crop).
        temperature: t (0.1 for the cross-modal term, ``args.temp`` = 0.5 for crops).
        symmetric: add the other direction.
        gather: the other ranks' rows are negatives.
    """

    def remote(x: torch.Tensor) -> torch.Tensor:
        return other_ranks(x) if gather else x[:0]

    loss = gdt_nce_loss(second, first.detach(), remote(first), temperature)
    if not symmetric:
        return loss
    return 0.5 * (loss + gdt_nce_loss(first, second.detach(), remote(second), temperature))


def stica_crop_loss(
    view1: dict[str, list[torch.Tensor]],
    view2: dict[str, list[torch.Tensor]],
    temperature: float = 0.5,
    gather: bool = True,
) -> torch.Tensor:
    """STiCA's crop terms (``nce_crop_losses_dual``): their sum over their count.

    For spatial and temporal crops alike: the second large crops of the two views against each other
    (symmetric), and every small crop of view 2 querying every large crop of view 1 (detached).

    Args:
        view1: embeddings (N, D) of the first view's crops by kind: ``spatial_large``, ``spatial_small``,
            ``temporal_large``, ``temporal_small``.
        view2: the same for the second view.
        temperature: t of the crop terms.
        gather: the other ranks' rows are negatives.
    """
    terms = []
    for kind in ("spatial", "temporal"):
        large1, large2, small2 = view1[f"{kind}_large"], view2[f"{kind}_large"], view2[f"{kind}_small"]
        for i, large in enumerate(large1):
            if i == 1:  # large-large needs two large crops
                terms.append(cross_view_nce_loss(large2[1], large, temperature, gather=gather))
            terms += [
                cross_view_nce_loss(large.detach(), small, temperature, symmetric=False, gather=gather)
                for small in small2
            ]
    if not terms:
        raise ValueError("no crop term: give two large crops, or small crops, of a kind")
    return torch.stack(terms).mean()
