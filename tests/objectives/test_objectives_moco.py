"""MoCo logits with the intra-video negative column, and the intra/inter triplet loss, against reference math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.objectives.moco import intra_inter_triplet_loss, moco_logits, moco_loss


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape), dim=-1)


def test_logits_are_positive_then_queue_then_intra_video_negative():
    torch.manual_seed(0)
    q, k, n, queue = _unit(4, 8), _unit(4, 8), _unit(4, 8), _unit(16, 8)
    logits = moco_logits(q, k, queue, n, temperature=0.07)
    assert logits.shape == (4, 1 + 16 + 1)
    for i in range(4):
        expected = torch.cat([(q[i] @ k[i])[None], queue @ q[i], (q[i] @ n[i])[None]]) / 0.07
        torch.testing.assert_close(logits[i], expected)
    assert moco_logits(q, k, queue).shape == (4, 17)  # plain MoCo: no extra column


def test_loss_is_cross_entropy_with_label_zero_and_gradients_reach_queries_and_negatives_only():
    torch.manual_seed(1)
    q, k, n = (_unit(3, 5).requires_grad_() for _ in range(3))
    queue = _unit(7, 5).requires_grad_()
    loss = moco_loss(q, k, queue, n, temperature=0.2)
    logits = moco_logits(q, k, queue, n, 0.2)
    torch.testing.assert_close(loss, -(logits.log_softmax(1)[:, 0]).mean())
    loss.backward()
    assert q.grad is not None and n.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and queue.grad is None


def test_shapes_are_checked_with_a_clear_message():
    with pytest.raises(ValueError, match="queue must be"):
        moco_logits(_unit(2, 4), _unit(2, 4), _unit(3, 5))
    with pytest.raises(ValueError, match="intra_negatives"):
        moco_logits(_unit(2, 4), _unit(2, 4), _unit(3, 4), _unit(3, 4))


def test_triplet_adds_the_flipped_batch_negatives():
    torch.manual_seed(2)
    a, p, n = torch.randn(5, 6), torch.randn(5, 6), torch.randn(5, 6)

    def hinge(a, p, n, m):
        return (torch.norm(a - p + 1e-6, dim=1) - torch.norm(a - n + 1e-6, dim=1) + m).clamp_min(0).mean()

    expected = hinge(a, p, n, 0.5) + hinge(a, p, n.flip(0), 0.5)
    torch.testing.assert_close(intra_inter_triplet_loss(a, p, n, 0.5), expected)
