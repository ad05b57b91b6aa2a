"""InfoNCE with extra negatives from a memory queue: no gradient to the queue, and MoCo's exact logits.

The MoCo reference follows the paper's pseudo-code (He et al. 2020, Algorithm 1): ``l_pos = q·k₊``,
``l_neg = q·queueᵀ``, cross-entropy of ``[l_pos, l_neg] / τ`` against label 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.objectives.infonce import InfoNCELoss, info_nce_loss

TOL = dict(atol=1e-12, rtol=1e-10)


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(5, 8, generator=g, dtype=torch.float64),
        torch.randn(5, 8, generator=g, dtype=torch.float64),
    )
    queue = F.normalize(torch.randn(11, 8, generator=g, dtype=torch.float64), dim=1)
    return q, k, queue


def moco_reference(q, k, queue, tau):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    l_pos = torch.einsum("nc,nc->n", q, k)[:, None]  # (N, 1)
    l_neg = torch.einsum("nc,kc->nk", q, queue)  # (N, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def test_no_gradient_reaches_the_queue():
    q, k, queue = _data()
    q.requires_grad_()
    queue.requires_grad_()
    info_nce_loss(q, k, 0.2, negatives=queue).backward()
    assert queue.grad is None
    assert q.grad is not None and float(q.grad.abs().sum()) > 0


def test_without_in_batch_negatives_it_is_moco():
    q, k, queue = _data(1)
    expected = moco_reference(q, k, queue, 0.07)
    loss = info_nce_loss(q, k, 0.07, negatives=queue, in_batch_negatives=False)
    assert torch.allclose(loss, expected, **TOL)
    module = InfoNCELoss(0.07, in_batch_negatives=False)
    assert torch.allclose(module(q, k, negatives=queue), expected, **TOL)


def test_in_batch_negatives_add_the_other_keys_to_the_queue():
    q, k, queue = _data(2)
    # the other keys of the batch are extra negatives: the same as a queue that holds them (for row i,
    # key i is still the positive), computed row by row
    rows = []
    for i in range(len(q)):
        others = torch.cat([k[:i], k[i + 1 :]])
        extended = torch.cat([F.normalize(others, dim=1), queue])
        rows.append(moco_reference(q[i : i + 1], k[i : i + 1], extended, 0.1))
    expected = torch.stack(rows).mean()
    assert torch.allclose(info_nce_loss(q, k, 0.1, negatives=queue), expected, **TOL)
