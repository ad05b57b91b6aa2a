"""Temporal coherence loss of TOT (Kumar et al., CVPR 2022, "TCL"; the ``TCN`` module of its code).

Frames close in time should embed close together. The frames of each training video come sorted in time
and are cut into consecutive groups of ``group_size`` frames (TOT: the frames drawn from one temporal part
of the video); from every group one frame is drawn at random as the anchor (any but the group's last) and
its successor is its positive. The anchors and positives of all groups of the batch form an N-pair loss
(Sohn, NeurIPS 2016): ``CE(a Pᵀ / τ, i)`` — each anchor must pick out its own positive among those of the
other groups.

The released code divides the embeddings by 0.1 before the product, which scales the logits by 1/0.01:
the default ``temperature`` here is that 0.01, applied once to the logits. It draws the anchor offsets
with ``torch.randint(0, group_size - 1, (groups,))`` from the global generator; so does this function
(or from ``generator``), so a fixed seed gives the same pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.objectives.infonce import fp32_logits

__all__ = ["temporal_coherence_loss"]


def temporal_coherence_loss(
    embeddings: torch.Tensor,
    group_size: int,
    temperature: float = 0.01,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """N-pair loss between a random frame of every group of ``group_size`` frames and its successor.

    Args:
        embeddings: (B, T, E) embeddings of B videos' frames sorted in time (each video's trailing
            ``T mod group_size`` frames are left out), or (N, E) for one sequence.
        group_size: frames per group, at least 2 (TOT: frames per video / temporal parts, 4).
        temperature: τ dividing the anchor–positive dot products (TOT's code: 0.01, see above).
        generator: random generator of the anchor draws (default: torch's global one, as the original).

    Returns:
        The mean cross-entropy over the groups, a scalar.
    """
    if embeddings.ndim == 2:
        embeddings = embeddings[None]
    if embeddings.ndim != 3:
        raise ValueError(f"embeddings must be (B, T, E) or (N, E); got {tuple(embeddings.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 (an anchor and its successor), got {group_size}")
    groups_per_video = embeddings.shape[1] // group_size
    if groups_per_video < 1 or groups_per_video * embeddings.shape[0] < 2:
        raise ValueError(
            f"need at least two groups of {group_size} frames for an N-pair loss; got {tuple(embeddings.shape)}"
        )
    used = embeddings[:, : groups_per_video * group_size]
    grouped = rearrange(used, "b (g s) e -> (b g) s e", s=group_size)  # (G, S, E)
    num_groups = grouped.shape[0]
    offsets = torch.randint(0, group_size - 1, (num_groups,), generator=generator).to(grouped.device)  # (G,)
    rows = torch.arange(num_groups, device=grouped.device)
    anchors, positives = grouped[rows, offsets], grouped[rows, offsets + 1]  # (G, E) each
    logits = fp32_logits(anchors, positives, temperature)  # (G, G), float32 under autocast
    return F.cross_entropy(logits, rows)
