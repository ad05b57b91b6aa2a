"""Momentum (EMA) encoders for BYOL/MoCo/DINO-style methods.

The target network follows the online one by an exponential moving average
``ξ ← τ·ξ + (1 − τ)·θ`` (BYOL eq. 1), with τ increased from ``base_tau`` to ``final_tau`` by a cosine
schedule over training (BYOL §3.2): ``τ = 1 − (1 − τ_base)·(cos(π·k/K) + 1)/2``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["MomentumEncoder", "cosine_tau"]


def cosine_tau(step: int, total_steps: int, base_tau: float = 0.996, final_tau: float = 1.0) -> float:
    """EMA coefficient at ``step`` of ``total_steps``: ``base_tau`` at 0, ``final_tau`` at the end."""
    progress = min(1.0, step / max(1, total_steps))
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * progress) + 1) / 2


class MomentumEncoder(nn.Module):
    """A frozen copy of ``online`` updated by EMA; call it like the module it copies.

    The online module is not stored here (it stays registered once, in the method); pass it to
    :meth:`update`. Buffers (BN statistics) are copied, not averaged.
    """

    def __init__(self, online: nn.Module, base_tau: float = 0.996, final_tau: float = 1.0):
        super().__init__()
        self.target = copy.deepcopy(online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.base_tau, self.final_tau = base_tau, final_tau
        self.tau = base_tau

    @torch.no_grad()
    def update(self, online: nn.Module, step: int, total_steps: int) -> float:
        """EMA step with τ of the cosine schedule at ``step``; returns the τ used."""
        self.tau = cosine_tau(step, total_steps, self.base_tau, self.final_tau)
        target_params = list(self.target.parameters())
        online_params = list(online.parameters())
        if len(target_params) != len(online_params):
            raise ValueError("online module does not match the momentum copy")
        torch._foreach_mul_(target_params, self.tau)
        torch._foreach_add_(target_params, online_params, alpha=1 - self.tau)
        for t, o in zip(self.target.buffers(), online.buffers()):
            t.copy_(o)
        return self.tau

    def forward(self, *args, **kwargs):
        return self.target(*args, **kwargs)
