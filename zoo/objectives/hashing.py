"""Losses of cross-view hashing on relaxed binary codes (DCVH, Liu & Qi, WACV 2018).

Codes are relaxed bits in [0, 1] (e.g. the output of
:class:`~zoo.models.binary_embedding.DirectBinaryEmbedding`). On exact bits the soft XOR
``a (1 − b) + (1 − a) b`` is the XOR and its sum over bits the Hamming distance; between bits it is
differentiable, which is how DCVH aligns the codes of two views by Hamming-distance minimisation.

The multi-label loss is the joint cross-entropy of the companion DBE paper (Liu et al. 2017, arXiv
1703.04960): a softmax cross-entropy against the label distribution (label correlation) plus a binary
cross-entropy per label (label independence). Only the abstracts of both papers could be read; the
form of each term and their weights are the zoo's reading of "softmax CE + weighted binary CE".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.objectives.infonce import at_least_float32

__all__ = ["joint_multilabel_loss", "soft_hamming_distance", "soft_xor"]


def soft_xor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise differentiable XOR of relaxed bits in [0, 1]: ``a (1 − b) + (1 − a) b``.

    Args:
        a: relaxed bits (..., K).
        b: relaxed bits, broadcastable to ``a``.
    """
    return a * (1 - b) + (1 - a) * b


def soft_hamming_distance(a: torch.Tensor, b: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """(...) soft Hamming distance: the soft XOR summed over the last (bit) dimension.

    Equals the Hamming distance when ``a`` and ``b`` hold exact bits in {0, 1}.

    Args:
        a: relaxed bits (..., K).
        b: relaxed bits, broadcastable to ``a``.
        normalize: divide by the number of bits K (a value in [0, 1] whatever the code length).
    """
    distance = soft_xor(a, b).sum(dim=-1)
    return distance / a.shape[-1] if normalize else distance


def joint_multilabel_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    softmax_weight: float = 1.0,
    bce_weight: float = 1.0,
    pos_weight: float | None = None,
) -> torch.Tensor:
    """Softmax cross-entropy against the normalised multi-hot labels plus per-label binary cross-entropy.

    ``softmax_weight · CE(softmax(logits), y / Σy) + bce_weight · mean BCE(σ(logits), y)``; samples
    without any label take no part in the softmax term.

    Args:
        logits: (B, Y) label scores.
        targets: (B, Y) multi-hot labels in {0, 1}.
        softmax_weight: weight of the softmax term (label correlation); 0 drops it.
        bce_weight: weight of the binary term (label independence); 0 drops it.
        pos_weight: weight of the positive labels in the binary term (None: 1, unweighted).
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    logits = at_least_float32(logits)  # bf16 log-probabilities keep 3 significant digits
    targets = targets.to(logits.dtype)
    loss = logits.new_zeros(())
    if softmax_weight:
        counts = targets.sum(dim=1)  # (B,)
        labelled = counts > 0
        distribution = targets[labelled] / counts[labelled, None]  # (B', Y), rows sum to 1
        log_probs = F.log_softmax(logits[labelled], dim=1)
        if labelled.any():
            loss = loss + softmax_weight * -(distribution * log_probs).sum(dim=1).mean()
    if bce_weight:
        weight = None if pos_weight is None else logits.new_tensor(pos_weight)
        loss = loss + bce_weight * F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight)
    return loss
