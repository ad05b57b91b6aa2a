"""LARS against a hand computation; warm-up + cosine factors; the EMA (momentum) encoder."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.methods.momentum import MomentumEncoder, cosine_tau
from zoo.methods.optim import LARS, param_groups, warmup_cosine


def test_lars_two_steps_by_hand():
    w = nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    b = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = LARS(
        [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
        lr=2.0,
        momentum=0.9,
        eta=0.01,
    )
    g_w, g_b = torch.tensor([0.6, 0.8], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    expected_w, expected_b, v_w, v_b = (
        w.detach().clone(),
        b.detach().clone(),
        torch.zeros(2, dtype=torch.float64),
        0.0,
    )
    for _ in range(2):
        w.grad, b.grad = g_w.clone(), g_b.clone()
        opt.step()
        d = g_w + 0.1 * expected_w  # weight decay
        trust = 0.01 * expected_w.norm() / d.norm()
        v_w = 0.9 * v_w + 2.0 * trust * d
        expected_w = expected_w - v_w
        v_b = 0.9 * v_b + 2.0 * g_b  # excluded: no decay, no trust ratio
        expected_b = expected_b - v_b
        assert torch.allclose(w.detach(), expected_w, atol=1e-12)
        assert torch.allclose(b.detach(), expected_b, atol=1e-12)


def test_param_groups_split_by_dimension():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decayed, excluded = param_groups(model.named_parameters(), 0.5)
    assert [p.shape for p in decayed["params"]] == [(4, 3)]
    assert len(excluded["params"]) == 3 and excluded["weight_decay"] == 0 and excluded["lars_exclude"]
    (single,) = param_groups(model.named_parameters(), 0.5, exclude_bias_and_norm=False)
    assert len(single["params"]) == 4


def test_warmup_cosine_factors():
    assert warmup_cosine(0, 4, 12) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 12) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 12) == pytest.approx(1.0)
    assert warmup_cosine(8, 4, 12) == pytest.approx(0.5)
    assert warmup_cosine(12, 4, 12, min_factor=0.1) == pytest.approx(0.1)


def test_momentum_encoder_follows_cosine_tau():
    assert cosine_tau(0, 10, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_tau(5, 10, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_tau(10, 10, 0.99, 1.0) == pytest.approx(1.0)
    online = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = MomentumEncoder(online, base_tau=0.9)
    assert all(not p.requires_grad for p in ema.parameters())
    before = [p.detach().clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(3.0)
    tau = ema.update(online, step=0, total_steps=10)
    assert tau == pytest.approx(0.9)
    for old, new, o in zip(before, ema.parameters(), online.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * o)
    assert torch.equal(ema.target[1].running_mean, online[1].running_mean)
    x = torch.randn(4, 2)
    ema.eval()
    assert torch.equal(ema(x), ema.target(x))
    assert math.isclose(ema.update(online, step=10, total_steps=10), 1.0)
