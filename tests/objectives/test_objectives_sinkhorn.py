"""Sinkhorn solvers against references written from the equations (float64, scaling-vector form).

The references keep the scalings ``u`` (clusters) and ``v`` (samples) of ``Q = diag(v) K diag(u)``
explicitly, one Python loop over the iterations, instead of rescaling ``Q`` in place as the solvers do.
Parity with the original code (SwAV ``distributed_sinkhorn``, SeLa ``optimize_L_sk``, SeLaVi
``optimize_L_sk_gpu``) was measured separately on CPU; see the module docstrings.
"""

from __future__ import annotations

import pytest
import torch

from zoo.objectives.sinkhorn import sinkhorn, sinkhorn_knopp, sinkhorn_swav

TOL = dict(atol=1e-12, rtol=1e-10)


def _random(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def reference_swav(scores, epsilon, iters, sample_weights=None, cluster_weights=None):
    """Q = diag(v) exp(S/ε) diag(u): u_k = r_k / Σ_i v_i K_ik, v_i = c_i / Σ_k K_ik u_k; rows of Q / c."""
    n, k = scores.shape
    c = torch.ones(n, dtype=scores.dtype) if sample_weights is None else sample_weights.clone()
    r = torch.ones(k, dtype=scores.dtype) if cluster_weights is None else cluster_weights.clone()
    c, r = c / c.sum(), r / r.sum()
    kernel = torch.exp(scores / epsilon)
    v = torch.ones(n, dtype=scores.dtype)
    for _ in range(iters):
        u = torch.stack([r[j] / sum(v[i] * kernel[i, j] for i in range(n)) for j in range(k)])
        v = torch.stack([c[i] / sum(kernel[i, j] * u[j] for j in range(k)) for i in range(n)])
    plan = v[:, None] * kernel * u[None, :]
    return plan / c[:, None]


def reference_sela(probs, power, tol, max_iters, check_every, sample_weights=None, cluster_weights=None):
    """SeLa's alternation α = r / (Kᵀβ), β = c / (Kα), from β = c, stopping on Σ|β/β' − 1| every few steps."""
    n, k = probs.shape
    c = (
        torch.full((n,), 1.0 / n, dtype=probs.dtype)
        if sample_weights is None
        else sample_weights / sample_weights.sum()
    )
    r = (
        torch.full((k,), 1.0 / k, dtype=probs.dtype)
        if cluster_weights is None
        else cluster_weights / cluster_weights.sum()
    )
    kernel = probs**power
    beta, error, steps = c.clone(), float("inf"), 0
    while error > tol and steps < max_iters:
        alpha = torch.stack([r[j] / (kernel[:, j] * beta).sum() for j in range(k)])
        beta_new = torch.stack([c[i] / (kernel[i] * alpha).sum() for i in range(n)])
        if steps % check_every == 0:
            error = float(sum(abs(beta[i] / beta_new[i] - 1) for i in range(n)))
        beta, steps = beta_new, steps + 1
    plan = beta[:, None] * kernel * alpha[None, :]
    return plan, plan.argmax(dim=1), steps


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize(("epsilon", "iters"), [(0.05, 3), (0.5, 1), (0.1, 7)])
def test_swav_matches_scaling_vector_reference(epsilon, iters, log_domain):
    scores = torch.tanh(_random(12, 5))
    expected = reference_swav(scores, epsilon, iters)
    codes = sinkhorn_swav(scores, epsilon, iters, log_domain=log_domain)
    assert torch.allclose(codes, expected, **TOL)
    assert torch.allclose(codes.sum(dim=1), torch.ones(12, dtype=torch.float64), **TOL)


@pytest.mark.parametrize("log_domain", [False, True])
def test_swav_arbitrary_marginals_match_reference_and_converge_to_them(log_domain):
    scores = torch.tanh(_random(10, 4, seed=1))
    sample_weights = _random(10, seed=2).abs() + 0.1
    cluster_weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    expected = reference_swav(scores, 0.2, 3, sample_weights, cluster_weights)
    codes = sinkhorn_swav(
        scores,
        0.2,
        3,
        sample_marginal=sample_weights,
        cluster_marginal=cluster_weights,
        log_domain=log_domain,
    )
    assert torch.allclose(codes, expected, **TOL)
    converged = sinkhorn_swav(
        scores,
        0.2,
        200,
        sample_marginal=sample_weights,
        cluster_marginal=cluster_weights,
        log_domain=log_domain,
    )
    cluster_mass = (converged * (sample_weights / sample_weights.sum())[:, None]).sum(dim=0)
    assert torch.allclose(cluster_mass, cluster_weights / cluster_weights.sum(), atol=1e-10)


def test_swav_gives_no_gradient_and_survives_huge_scores():
    scores = torch.tanh(_random(8, 3, seed=3)).requires_grad_()
    assert not sinkhorn_swav(scores).requires_grad
    # exp(1e3 / 0.05) overflows without the exact global shift; the codes only depend on score differences
    shifted = sinkhorn_swav(scores.detach() + 1e3)
    assert torch.isfinite(shifted).all()
    assert torch.allclose(shifted, sinkhorn_swav(scores.detach()), atol=1e-9)


def test_log_domain_survives_rows_that_underflow():
    # sample 0 scores far below the rest: exp(-2000) underflows to 0 in the exponential form
    scores = torch.tanh(_random(6, 3, seed=4))
    scores[0] -= 100.0
    in_exp = sinkhorn_swav(scores, 0.05)
    in_log = sinkhorn_swav(scores, 0.05, log_domain=True)
    assert not torch.isfinite(in_exp).all()
    assert torch.isfinite(in_log).all()
    assert torch.allclose(in_log.sum(dim=1), torch.ones(6, dtype=torch.float64), **TOL)


def test_sinkhorn_rejects_bad_marginals_and_shapes():
    with pytest.raises(ValueError, match="cluster_marginal"):
        sinkhorn(_random(4, 3), cluster_marginal=torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        sinkhorn(_random(4, 3), sample_marginal=torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="N samples"):
        sinkhorn(_random(4))


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize(("power", "tol", "check_every"), [(20.0, 0.1, 10), (5.0, 1e-6, 1), (10.0, 0.1, 3)])
def test_sela_matches_reference_plan_labels_and_step_count(power, tol, check_every, log_domain):
    probs = torch.softmax(_random(40, 6, seed=5, scale=2.0), dim=1)
    plan, labels, steps = reference_sela(probs, power, tol, 2000, check_every)
    result = sinkhorn_knopp(probs, power, tol=tol, check_every=check_every, log_domain=log_domain)
    assert result.iterations == steps
    assert torch.equal(result.labels, labels)
    assert torch.allclose(result.plan * 40, plan * 40, atol=1e-10, rtol=1e-8)
    assert result.error <= tol


def test_sela_arbitrary_marginals_are_met_at_convergence():
    probs = torch.softmax(_random(30, 4, seed=6, scale=2.0), dim=1)
    cluster_weights = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    sample_weights = torch.linspace(1.0, 2.0, 30, dtype=torch.float64)
    plan, labels, steps = reference_sela(probs, 20.0, 1e-12, 5000, 1, sample_weights, cluster_weights)
    result = sinkhorn_knopp(
        probs,
        20.0,
        sample_marginal=sample_weights,
        cluster_marginal=cluster_weights,
        tol=1e-12,
        check_every=1,
        max_iters=5000,
    )
    assert result.iterations == steps and torch.equal(result.labels, labels)
    assert torch.allclose(result.plan, plan, atol=1e-12, rtol=1e-8)
    assert torch.allclose(result.plan.sum(dim=0), cluster_weights / cluster_weights.sum(), atol=1e-10)
    assert torch.allclose(result.plan.sum(dim=1), sample_weights / sample_weights.sum(), atol=1e-10)


def test_sela_max_iters_caps_the_loop():
    probs = torch.softmax(_random(30, 4, seed=7, scale=3.0), dim=1)
    result = sinkhorn_knopp(probs, 20.0, tol=0.0, max_iters=7)
    assert result.iterations == 7 and result.error > 0.0


def test_sela_log_domain_keeps_labels_where_float32_power_underflows():
    # near-uniform probabilities over 8 clusters: P^80 underflows float32 for whole rows and the exponential
    # form divides 0 by 0; the log domain keeps float64's labels
    probs = torch.softmax(_random(50, 8, seed=8, scale=0.5), dim=1)
    reference = sinkhorn_knopp(probs, 80.0)
    exp32 = sinkhorn_knopp(probs.float(), 80.0, dtype=torch.float32)
    log32 = sinkhorn_knopp(probs.float(), 80.0, dtype=torch.float32, log_domain=True)
    assert not torch.isfinite(exp32.plan).all()
    assert torch.equal(log32.labels, reference.labels)
