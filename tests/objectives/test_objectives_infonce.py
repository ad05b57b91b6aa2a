"""InfoNCE / NT-Xent against straightforward loop implementations (float64, tolerance 1e-10).

The references below are written from the equations, one anchor at a time, independently of
``zoo.objectives.infonce``; the TF-original reference follows the structure of
``add_contrastive_loss`` (logits_ab / logits_aa with a -1e9 self mask, loss_a + loss_b).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.objectives.infonce import (
    CrossModalInfoNCELoss,
    NTXentLoss,
    cross_modal_info_nce_loss,
    info_nce_loss,
    nt_xent_loss,
)

TOL = dict(atol=1e-10, rtol=1e-10)


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def loop_nt_xent(z: torch.Tensor, tau: float, positives_of) -> torch.Tensor:
    """Mean over anchors of -log(Σ_pos exp(s/τ) / Σ_{j≠anchor} exp(s/τ)); positives_of(n,k) -> set of (m,l)."""
    n, k, _ = z.shape
    losses = []
    for i in range(n):
        for a in range(k):
            num, den = 0.0, 0.0
            for j in range(n):
                for b in range(k):
                    if (i, a) == (j, b):
                        continue
                    e = math.exp(_cos(z[i, a], z[j, b]) / tau)
                    den += e
                    if (j, b) in positives_of(i, a):
                        num += e
            losses.append(-math.log(num / den))
    return torch.tensor(losses, dtype=torch.float64).reshape(n, k)


def tf_original_loss(h1: torch.Tensor, h2: torch.Tensor, tau: float) -> torch.Tensor:
    """The TF SimCLR objective's math: mean_i(CE([ab, aa]) + CE([ba, bb])), self masked with -1e9."""
    h1, h2 = F.normalize(h1, dim=1), F.normalize(h2, dim=1)
    n = h1.shape[0]
    masks = torch.eye(n, dtype=h1.dtype)
    logits_aa = h1 @ h1.T / tau - masks * 1e9
    logits_bb = h2 @ h2.T / tau - masks * 1e9
    logits_ab = h1 @ h2.T / tau
    logits_ba = h2 @ h1.T / tau
    labels = torch.arange(n)
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], 1), labels)
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], 1), labels)
    return loss_a + loss_b


def test_nt_xent_two_views_matches_loop_and_both_conventions():
    torch.manual_seed(0)
    z = torch.randn(5, 2, 7, dtype=torch.float64)
    tau = 0.3
    ref = loop_nt_xent(z, tau, lambda i, a: {(i, 1 - a)})
    assert torch.allclose(nt_xent_loss(z, tau), ref.mean(), **TOL)
    # TF original sums the two directions: exactly 2x the PyTorch-port mean.
    tf = tf_original_loss(z[:, 0], z[:, 1], tau)
    assert torch.allclose(nt_xent_loss(z, tau, view_reduction="sum"), tf, **TOL)
    assert torch.allclose(2 * nt_xent_loss(z, tau, view_reduction="mean"), tf, **TOL)


def test_nt_xent_matches_sthalles_style_label_zero_form():
    """[positive, negatives] logits with label 0, averaged over 2N rows (the common PyTorch port)."""
    torch.manual_seed(1)
    z = torch.randn(4, 2, 6, dtype=torch.float64)
    flat = F.normalize(torch.cat([z[:, 0], z[:, 1]]), dim=1)  # (2N, D), views stacked
    n2 = flat.shape[0]
    sim = flat @ flat.T
    partner = torch.cat([torch.arange(4, 8), torch.arange(0, 4)])
    rows = []
    for i in range(n2):
        negatives = [sim[i, j] for j in range(n2) if j not in (i, int(partner[i]))]
        rows.append(torch.stack([sim[i, partner[i]], *negatives]))
    logits = torch.stack(rows) / 0.5
    ref = F.cross_entropy(logits, torch.zeros(n2, dtype=torch.long))
    assert torch.allclose(nt_xent_loss(z, 0.5), ref, **TOL)


@pytest.mark.parametrize("k", [3, 4])
def test_nt_xent_multi_view_positives(k):
    torch.manual_seed(2)
    z = torch.randn(3, k, 5, dtype=torch.float64)
    ref = loop_nt_xent(z, 0.2, lambda i, a: {(i, b) for b in range(k) if b != a})
    assert torch.allclose(nt_xent_loss(z, 0.2), ref.mean(), **TOL)
    assert torch.allclose(nt_xent_loss(z, 0.2, view_reduction="sum"), ref.sum(1).mean(), **TOL)


def test_nt_xent_indexes_and_mask_add_positives():
    torch.manual_seed(3)
    z = torch.randn(4, 2, 5, dtype=torch.float64)
    indexes = torch.tensor([7, 3, 7, 1])  # samples 0 and 2 are the same source
    same = {0: {0, 2}, 1: {1}, 2: {0, 2}, 3: {3}}
    ref = loop_nt_xent(z, 0.4, lambda i, a: {(j, b) for j in same[i] for b in range(2)} - {(i, a)})
    assert torch.allclose(nt_xent_loss(z, 0.4, indexes=indexes), ref.mean(), **TOL)
    mask = indexes[:, None] == indexes[None, :]
    assert torch.allclose(nt_xent_loss(z, 0.4, positive_mask=mask), ref.mean(), **TOL)


def test_nt_xent_mean_positive_reduction_is_supcon_out():
    torch.manual_seed(4)
    z = torch.randn(3, 3, 4, dtype=torch.float64)
    tau = 0.25
    losses = []
    for i in range(3):
        for a in range(3):
            others = [(j, b) for j in range(3) for b in range(3) if (j, b) != (i, a)]
            log_den = math.log(sum(math.exp(_cos(z[i, a], z[j, b]) / tau) for j, b in others))
            pos = [_cos(z[i, a], z[i, b]) / tau - log_den for b in range(3) if b != a]
            losses.append(-sum(pos) / len(pos))
    ref = torch.tensor(losses, dtype=torch.float64).mean()
    assert torch.allclose(nt_xent_loss(z, tau, positive_reduction="mean"), ref, **TOL)


def test_single_view_without_positives_is_an_error():
    with pytest.raises(ValueError, match="positive"):
        nt_xent_loss(torch.randn(4, 1, 3))


def test_info_nce_with_queue_matches_loop():
    torch.manual_seed(5)
    q, k, queue = (
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(9, 6),
    )
    queue = queue.double()
    tau = 0.07
    ref = []
    for i in range(4):
        pos = math.exp(_cos(q[i], k[i]) / tau)
        den = sum(math.exp(_cos(q[i], k[j]) / tau) for j in range(4))
        den += sum(math.exp(_cos(q[i], queue[j]) / tau) for j in range(9))
        ref.append(-math.log(pos / den))
    expected = torch.tensor(ref, dtype=torch.float64).mean()
    assert torch.allclose(info_nce_loss(q, k, tau, negatives=queue), expected, **TOL)


def test_cross_modal_directions_and_mask():
    torch.manual_seed(6)
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    tau = 0.1
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[0, 3] = True  # a0 also matches b3 (and, by symmetry, b3 also matches a0)

    def direction(x, y, m):
        out = []
        for i in range(5):
            sims = [math.exp(_cos(x[i], y[j]) / tau) for j in range(5)]
            pos = sum(s for j, s in enumerate(sims) if j == i or m[i, j])
            out.append(-math.log(pos / sum(sims)))
        return sum(out) / 5

    ab, ba = direction(a, b, mask), direction(b, a, mask.T)
    got_mean = cross_modal_info_nce_loss(a, b, tau, positive_mask=mask)
    got_sum = cross_modal_info_nce_loss(a, b, tau, positive_mask=mask, direction_reduction="sum")
    got_one = cross_modal_info_nce_loss(a, b, tau, positive_mask=mask, symmetric=False)
    assert torch.allclose(got_mean, torch.tensor((ab + ba) / 2, dtype=torch.float64), **TOL)
    assert torch.allclose(got_sum, torch.tensor(ab + ba, dtype=torch.float64), **TOL)
    assert torch.allclose(got_one, torch.tensor(ab, dtype=torch.float64), **TOL)


def test_modules_match_functions_and_learnable_temperature_gets_gradient():
    torch.manual_seed(7)
    z = torch.randn(6, 2, 8)
    assert torch.allclose(NTXentLoss(0.2)(z), nt_xent_loss(z, 0.2))
    loss_fn = CrossModalInfoNCELoss(0.07, learnable_temperature=True)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    loss = loss_fn(a, b)
    assert torch.allclose(loss, cross_modal_info_nce_loss(a, b, 0.07), atol=1e-6)
    loss.backward()
    assert loss_fn.log_temperature.grad is not None and loss_fn.log_temperature.grad.abs() > 0


def test_gradient_matches_autograd_of_loop_reference():
    """Masking (not subtracting) the self-similarity: no gradient leaks through (i, i)."""
    torch.manual_seed(8)
    z = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    nt_xent_loss(z, 0.5).backward()
    grad_ours = z.grad.clone()
    z.grad = None
    zn = F.normalize(z, dim=-1).reshape(6, 4)
    sim = zn @ zn.T / 0.5
    losses = []
    for r in range(6):
        partner = r + 1 if r % 2 == 0 else r - 1
        others = torch.stack([sim[r, c] for c in range(6) if c != r])
        losses.append(torch.logsumexp(others, 0) - sim[r, partner])
    torch.stack(losses).mean().backward()
    assert torch.allclose(grad_ours, z.grad, **TOL)
