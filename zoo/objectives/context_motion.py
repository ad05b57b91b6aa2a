"""CMD's motion-prediction loss: InfoNCE of each prediction against every key of the (gathered) batch.

Huang et al., CVPR 2021 (https://arxiv.org/abs/2104.00862), as the released ``pretrain.py`` computes it:
``L_m = CE(q · all_kᵀ / τ, y)``, one direction (query → keys). A rank holds N predictions ``q`` and
M ≥ N keys ``k`` whose first N rows are the positives, row for row (CMD: the B·Q positions of the
positive motion-vector clips, then the positions of the hard-negative clips from other times of the same
videos). Every other key of every rank is a negative: the other positions of the same clip, the hard
negatives and the other videos. Unlike :func:`zoo.objectives.infonce.info_nce_loss`, the extra keys are
not a detached queue: they are gathered from every rank with their gradient.

Gradients across ranks: the keys are gathered with an autograd-correct all-gather, so the gradient is
that of the mean loss over all ranks once DDP averages the parameter gradients. The released code
reduces the key gradients to their owner rank and divides them by the world size before DDP's own
averaging, which makes them ``world_size`` times smaller than the queries'; on one process both agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.objectives.distributed import gather_with_grad, get_rank
from zoo.objectives.infonce import fp32_logits, fp32_normalize

__all__ = ["keyed_info_nce_loss"]


def keyed_info_nce_loss(
    query: torch.Tensor,
    keys: torch.Tensor,
    temperature: float | torch.Tensor = 0.1,
    *,
    normalize: bool = False,
    gather: bool = False,
    return_accuracy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Mean over queries of ``-log softmax(q_i · K / τ)[i + rank·M]``: key row i is query row i's positive.

    Args:
        query: (N, D) predictions of this rank.
        keys: (M, D) keys of this rank, M ≥ N; rows ``[0, N)`` are the positives of the queries in order,
            the rest only negatives.
        temperature: τ (0.1 in CMD).
        normalize: L2-normalise query and keys first (CMD's heads already do).
        gather: use the keys of every rank (each rank the same M).
        return_accuracy: also return the fraction of queries whose positive scores highest.
    """
    if query.ndim != 2 or keys.ndim != 2 or query.shape[1] != keys.shape[1]:
        raise ValueError(
            f"query (N, D) and keys (M, D) expected; got {tuple(query.shape)}, {tuple(keys.shape)}"
        )
    n, m = query.shape[0], keys.shape[0]
    if m < n:
        raise ValueError(f"keys must hold the {n} positives first and may add negatives; got only {m} rows")
    if normalize:
        query, keys = fp32_normalize(query), fp32_normalize(keys)
    offset = get_rank() * m if gather else 0
    all_keys = gather_with_grad(keys) if gather else keys  # (M·world, D), rank r's rows at [r·M, (r+1)·M)
    logits = fp32_logits(query, all_keys, temperature)  # (N, M·world), float32 under autocast
    target = torch.arange(offset, offset + n, device=query.device)
    loss = F.cross_entropy(logits, target)
    if not return_accuracy:
        return loss
    accuracy = (logits.detach().argmax(dim=1) == target).float().mean()
    return loss, accuracy
