"""InfoNCE / NT-Xent contrastive losses: pure functions plus thin ``nn.Module`` wrappers.

Three forms cover the methods of the zoo:

* :func:`nt_xent_loss` — one embedding set of ``K`` views per sample (SimCLR, eq. 1 of Chen et al.
  2020): every view is an anchor, the other views of its sample are positives, every other view in
  the (optionally gathered) batch is a negative, the anchor itself is excluded.
* :func:`info_nce_loss` — query rows against paired key rows (positives on the diagonal) plus
  optional extra negatives from a memory queue (no gradient to it; with or without the in-batch keys,
  MoCo being "without"); one direction.
* :func:`cross_modal_info_nce_loss` — two different embedding sets (video↔audio, video↔text), one
  or both directions.

Extra positives: ``indexes`` (rows sharing an index are positives — e.g. two clips of one video)
or a boolean ``positive_mask`` (``True`` = positive). With several positives per anchor,
``positive_reduction="logsumexp"`` gives ``-log(Σ_p exp(s_p) / Σ_j exp(s_j))`` (MIL-NCE,
solo-learn's SimCLR) and ``"mean"`` the mean of ``-log(exp(s_p) / Σ_j exp(s_j))`` over positives
(SupCon's L_out). With one positive both are the usual cross-entropy.

**Factor-2 convention.** The TF original (``google-research/simclr`` ``add_contrastive_loss``)
computes, for N pairs, ``loss_a`` (view-1 anchors) and ``loss_b`` (view-2 anchors) and returns
``mean_i(loss_a + loss_b)`` — it *sums* the two directions — while the PyTorch ports average over
all 2N anchors. The TF value is therefore exactly twice the ports' value. ``view_reduction="sum"``
(sum over a sample's views, mean over samples) reproduces the TF figure, ``"mean"`` the ports';
likewise ``direction_reduction`` in the cross-modal loss ("sum" = TF/SimCLR style, "mean" = CLIP).
Gradients scale by the same factor, which matters when porting a learning rate.

``gather=True`` gathers candidates across ranks with an autograd-correct all-gather (each rank's
anchors stay local); it is a no-op without an initialised process group.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.objectives.distributed import gather_no_grad, gather_with_grad, get_rank

PositiveReduction = Literal["logsumexp", "mean"]
PairReduction = Literal["mean", "sum"]

__all__ = [
    "CrossModalInfoNCELoss",
    "InfoNCELoss",
    "NTXentLoss",
    "at_least_float32",
    "contrastive_row_losses",
    "cross_modal_info_nce_loss",
    "fp32_einsum",
    "fp32_logits",
    "fp32_normalize",
    "info_nce_loss",
    "nt_xent_loss",
]


def fp32_logits(
    query: torch.Tensor, keys: torch.Tensor, temperature: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """``query @ keys.T / τ`` (N, M) in float32 at least, outside autocast (float64 stays float64).

    Under bf16 autocast the product of unit vectors is off by about 1e-2, i.e. 0.1 in the logits at τ = 0.1,
    before the softmax amplifies it; the logits of every contrastive loss are computed here.

    Args:
        query: (N, D) embeddings.
        keys: (M, D) embeddings.
        temperature: τ.
    """
    return fp32_einsum("nd,md->nm", query, keys) / temperature


def fp32_einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """``torch.einsum(equation, *operands)`` in float32 at least, outside autocast (float64 stays float64)."""
    with torch.autocast(operands[0].device.type, enabled=False):
        return torch.einsum(equation, *(at_least_float32(x) for x in operands))


def fp32_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x`` (..., D) scaled to unit L2 norm along its last dimension, in float32 at least."""
    return F.normalize(at_least_float32(x), dim=-1)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is in a lower precision (bf16, fp16); float32 and float64 stay as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def contrastive_row_losses(
    logits: torch.Tensor,
    positive: torch.Tensor,
    excluded: torch.Tensor | None = None,
    positive_reduction: PositiveReduction = "logsumexp",
) -> torch.Tensor:
    """Per-row ``-log p(positive | anchor)`` from ``logits`` (R, C) and a boolean ``positive`` (R, C).

    ``excluded`` entries (e.g. the anchor itself) are neither positives nor negatives.
    """
    if excluded is not None:
        logits = logits.masked_fill(excluded, float("-inf"))
        positive = positive & ~excluded
    if not bool(positive.any(dim=1).all()):
        raise ValueError("every anchor needs at least one positive (check views/positive_mask)")
    log_normaliser = torch.logsumexp(logits, dim=1)  # (R,)
    if positive_reduction == "logsumexp":
        return log_normaliser - torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    if positive_reduction == "mean":
        log_prob = logits - log_normaliser[:, None]
        return -torch.where(positive, log_prob, 0.0).sum(dim=1) / positive.sum(dim=1)
    raise ValueError(f"positive_reduction must be 'logsumexp' or 'mean', got {positive_reduction!r}")


def _own_rows(n: int, m: int, offset: int, device: torch.device) -> torch.Tensor:
    """(n, m) bool: local row i is global row ``offset + i``."""
    mask = torch.zeros(n, m, dtype=torch.bool, device=device)
    mask[torch.arange(n, device=device), offset + torch.arange(n, device=device)] = True
    return mask


def _extra_positives(
    n: int,
    m: int,
    offset: int,
    indexes: torch.Tensor | None,
    positive_mask: torch.Tensor | None,
    gather: bool,
    device: torch.device,
) -> torch.Tensor:
    """Sample-level positives (n local anchors × m gathered candidates), own sample included."""
    if indexes is not None and positive_mask is not None:
        raise ValueError("give either indexes or positive_mask, not both")
    positive = _own_rows(n, m, offset, device)
    if indexes is not None:
        all_indexes = gather_no_grad(indexes) if gather else indexes
        positive |= indexes[:, None] == all_indexes[None, :]
    if positive_mask is not None:
        if positive_mask.shape != (n, m):
            raise ValueError(
                f"positive_mask must be (local {n}, gathered {m}); got {tuple(positive_mask.shape)}"
            )
        positive |= positive_mask.bool()
    return positive


def nt_xent_loss(
    z: torch.Tensor,
    temperature: float | torch.Tensor = 0.1,
    *,
    indexes: torch.Tensor | None = None,
    positive_mask: torch.Tensor | None = None,
    view_reduction: PairReduction = "mean",
    positive_reduction: PositiveReduction = "logsumexp",
    normalize: bool = True,
    gather: bool = False,
) -> torch.Tensor:
    """NT-Xent over ``z`` (N, K, D): K views of N samples (SimCLR eq. 1, all KN views as anchors).

    Args:
        z: projections, views of a sample along dim 1.
        temperature: τ (a float or a learnable scalar tensor).
        indexes: (N,) sample ids; samples sharing an id are positives of each other.
        positive_mask: (N, N·world) bool, extra sample-level positives against the gathered batch.
        view_reduction: "mean" over all NK anchors (PyTorch ports) or "sum" over views, mean over
            samples (TF original; K× the "mean" value).
        positive_reduction: how several positives of one anchor combine (see module docstring).
        normalize: L2-normalise ``z`` first (cosine similarity).
        gather: use every rank's views as candidates.
    """
    if z.ndim != 3:
        raise ValueError(f"z must be (N, K views, D); got {tuple(z.shape)}")
    n, k, _ = z.shape
    if normalize:
        z = fp32_normalize(z)
    candidates = gather_with_grad(z) if gather else z  # (M, K, D)
    m = candidates.shape[0]
    offset = get_rank() * n if gather else 0

    sample_positive = _extra_positives(n, m, offset, indexes, positive_mask, gather, z.device)  # (N, M)
    positive = sample_positive.repeat_interleave(k, dim=0).repeat_interleave(k, dim=1)  # (NK, MK)
    is_self = _own_rows(n * k, m * k, offset * k, z.device)

    anchors = rearrange(z, "n k d -> (n k) d")
    logits = fp32_logits(anchors, rearrange(candidates, "m k d -> (m k) d"), temperature)  # (NK, MK)
    rows = contrastive_row_losses(logits, positive, is_self, positive_reduction)
    rows = rearrange(rows, "(n k) -> n k", k=k)
    if view_reduction == "sum":
        return rows.sum(dim=1).mean()
    if view_reduction == "mean":
        return rows.mean()
    raise ValueError(f"view_reduction must be 'mean' or 'sum', got {view_reduction!r}")


def info_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    *,
    negatives: torch.Tensor | None = None,
    positive_mask: torch.Tensor | None = None,
    positive_reduction: PositiveReduction = "logsumexp",
    normalize: bool = True,
    gather: bool = False,
    in_batch_negatives: bool = True,
) -> torch.Tensor:
    """One-directional InfoNCE: query row i's positive is key row i; other keys are negatives.

    With a queue, the logits of row i are ``[q_i·k_j for the (gathered) keys j, q_i·n for the queue rows
    n] / τ``; ``in_batch_negatives=False`` keeps only the positive keys and the queue, MoCo's
    ``[q·k₊, q·queue] / τ`` (He et al. 2020, eq. 1).

    Args:
        query: (N, D) anchors.
        key: (N, D) paired candidates (gathered over ranks when ``gather``).
        temperature: τ (a float or a learnable scalar tensor).
        negatives: (Q, D) extra negatives, e.g. a memory queue; never positives, never gathered, and
            detached (no gradient reaches the queue).
        positive_mask: (N, N·world) bool, extra positives among the (gathered) keys.
        positive_reduction: how several positives of one anchor combine (see module docstring).
        normalize: L2-normalise query, key and negatives first (cosine similarity).
        gather: use every rank's keys as candidates.
        in_batch_negatives: the other (non-positive) keys are negatives; False leaves them out.
    """
    if query.ndim != 2 or query.shape != key.shape:
        raise ValueError(f"query and key must both be (N, D); got {tuple(query.shape)}, {tuple(key.shape)}")
    n = query.shape[0]
    negatives = None if negatives is None else negatives.detach()
    if normalize:
        query, key = fp32_normalize(query), fp32_normalize(key)
        negatives = None if negatives is None else fp32_normalize(negatives)
    keys = gather_with_grad(key) if gather else key  # (M, D)
    offset = get_rank() * n if gather else 0
    positive = _extra_positives(n, keys.shape[0], offset, None, positive_mask, gather, query.device)
    excluded = None if in_batch_negatives else ~positive  # (N, M)
    if negatives is not None:
        keys = torch.cat([keys, negatives], dim=0)  # (M + Q, D)
        positive = F.pad(positive, (0, negatives.shape[0]), value=False)
        excluded = None if excluded is None else F.pad(excluded, (0, negatives.shape[0]), value=False)
    logits = fp32_logits(query, keys, temperature)  # (N, M + Q)
    return contrastive_row_losses(logits, positive, excluded, positive_reduction).mean()


def cross_modal_info_nce_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    *,
    symmetric: bool = True,
    direction_reduction: PairReduction = "mean",
    positive_mask: torch.Tensor | None = None,
    positive_reduction: PositiveReduction = "logsumexp",
    normalize: bool = True,
    gather: bool = False,
) -> torch.Tensor:
    """InfoNCE between two embedding sets (e.g. video ``a`` and audio/text ``b``), row i ↔ row i.

    Args:
        symmetric: add the b→a direction.
        direction_reduction: "mean" of the two directions (CLIP) or their "sum" (TF SimCLR style).
        positive_mask: (N, N·world) bool, extra positives of a-rows among b-rows (transposed for b→a).
    """
    if normalize:
        a, b = fp32_normalize(a), fp32_normalize(b)
    common = dict(positive_reduction=positive_reduction, normalize=False, gather=gather)
    loss_ab = info_nce_loss(a, b, temperature, positive_mask=positive_mask, **common)
    if not symmetric:
        return loss_ab
    mask_ba = None
    if positive_mask is not None:
        n = a.shape[0]
        full = (
            gather_no_grad(positive_mask.to(torch.uint8)).bool() if gather else positive_mask.bool()
        )  # (M, M)
        offset = get_rank() * n if gather else 0
        mask_ba = full[:, offset : offset + n].T  # local b rows against all a rows
    loss_ba = info_nce_loss(b, a, temperature, positive_mask=mask_ba, **common)
    if direction_reduction == "sum":
        return loss_ab + loss_ba
    if direction_reduction == "mean":
        return (loss_ab + loss_ba) / 2
    raise ValueError(f"direction_reduction must be 'mean' or 'sum', got {direction_reduction!r}")


class NTXentLoss(nn.Module):
    """:func:`nt_xent_loss` as a module; ``forward(z (N, K, D), indexes=None, positive_mask=None)``."""

    def __init__(
        self,
        temperature: float = 0.1,
        view_reduction: PairReduction = "mean",
        positive_reduction: PositiveReduction = "logsumexp",
        normalize: bool = True,
        gather_distributed: bool = False,
    ):
        super().__init__()
        self.temperature = temperature
        self.view_reduction = view_reduction
        self.positive_reduction = positive_reduction
        self.normalize = normalize
        self.gather_distributed = gather_distributed

    def forward(
        self, z: torch.Tensor, indexes: torch.Tensor | None = None, positive_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return nt_xent_loss(
            z,
            self.temperature,
            indexes=indexes,
            positive_mask=positive_mask,
            view_reduction=self.view_reduction,
            positive_reduction=self.positive_reduction,
            normalize=self.normalize,
            gather=self.gather_distributed,
        )


class InfoNCELoss(nn.Module):
    """:func:`info_nce_loss` as a module; ``forward(query, key, negatives=None, positive_mask=None)``."""

    def __init__(
        self,
        temperature: float = 0.07,
        positive_reduction: PositiveReduction = "logsumexp",
        normalize: bool = True,
        gather_distributed: bool = False,
        in_batch_negatives: bool = True,
    ):
        super().__init__()
        self.temperature = temperature
        self.positive_reduction = positive_reduction
        self.normalize = normalize
        self.gather_distributed = gather_distributed
        self.in_batch_negatives = in_batch_negatives

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        negatives: torch.Tensor | None = None,
        positive_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return info_nce_loss(
            query,
            key,
            self.temperature,
            negatives=negatives,
            positive_mask=positive_mask,
            positive_reduction=self.positive_reduction,
            normalize=self.normalize,
            gather=self.gather_distributed,
            in_batch_negatives=self.in_batch_negatives,
        )


class CrossModalInfoNCELoss(nn.Module):
    """:func:`cross_modal_info_nce_loss` as a module; optional learnable temperature (CLIP-style)."""

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        symmetric: bool = True,
        direction_reduction: PairReduction = "mean",
        positive_reduction: PositiveReduction = "logsumexp",
        normalize: bool = True,
        gather_distributed: bool = False,
    ):
        super().__init__()
        log_t = torch.tensor(float(temperature)).log()
        self.log_temperature = nn.Parameter(log_t) if learnable_temperature else None
        self.temperature = temperature
        self.symmetric = symmetric
        self.direction_reduction = direction_reduction
        self.positive_reduction = positive_reduction
        self.normalize = normalize
        self.gather_distributed = gather_distributed

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, positive_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        temperature = self.temperature if self.log_temperature is None else self.log_temperature.exp()
        return cross_modal_info_nce_loss(
            a,
            b,
            temperature,
            symmetric=self.symmetric,
            direction_reduction=self.direction_reduction,
            positive_mask=positive_mask,
            positive_reduction=self.positive_reduction,
            normalize=self.normalize,
            gather=self.gather_distributed,
        )
