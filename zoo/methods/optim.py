"""Optimisers and schedules shared by the methods: LARS, parameter groups, warm-up + cosine.

LARS (You et al. 2017, https://arxiv.org/abs/1708.03888) as in the SimCLR TF code
(``lars_optimizer.py``): for each parameter ``w`` with gradient ``g``

    g ← g + λ·w                                  (weight decay, unless excluded)
    r = η·‖w‖ / ‖g‖  (1 if either norm is 0)     (trust ratio, unless excluded)
    v ← m·v + lr·r·g                             (the learning rate is inside the momentum buffer)
    w ← w − v            (Nesterov: w ← w − (m·v + lr·r·g))

Biases and normalisation parameters (1-D tensors) are excluded from weight decay and from the
trust ratio, as in the paper's recipe; :func:`param_groups` marks them with ``lars_exclude``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

OptimizerName = Literal["lars", "sgd", "adamw", "adam"]

__all__ = [
    "LARS",
    "build_optimizer",
    "param_groups",
    "per_step_schedule",
    "warmup_cosine",
    "warmup_cosine_scheduler",
]


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling with momentum (SimCLR TF semantics, see module docstring).

    Parameter groups may set ``lars_exclude=True`` to skip weight decay and the trust ratio.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
        nesterov: bool = False,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0 or eta < 0:
            raise ValueError("lr, momentum, weight_decay and eta must be >= 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, nesterov=nesterov)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            exclude = group.get("lars_exclude", False)
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] and not exclude:
                    grad = grad.add(p, alpha=group["weight_decay"])
                scaled_lr = group["lr"]
                if not exclude:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    scaled_lr = scaled_lr * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                update = grad * scaled_lr
                buf.mul_(group["momentum"]).add_(update)
                p.sub_(buf * group["momentum"] + update if group["nesterov"] else buf)
        return loss


def param_groups(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    weight_decay: float,
    exclude_bias_and_norm: bool = True,
    no_decay_names: Iterable[str] = (),
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and an undecayed LARS-excluded one.

    Undecayed: 1-D tensors (biases, norm scales) when ``exclude_bias_and_norm``, and the parameters named in
    ``no_decay_names`` (a backbone's ``no_weight_decay()``: tokens and position embeddings).
    """
    skip = set(no_decay_names)
    decay, no_decay = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        (no_decay if name in skip or (exclude_bias_and_norm and p.ndim <= 1) else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, **group_options})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True, **group_options})
    return groups


def build_optimizer(
    name: OptimizerName,
    groups: list[dict[str, Any]],
    lr: float,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    lars_eta: float = 0.001,
    nesterov: bool = False,
) -> Optimizer:
    """An optimiser by name over prepared parameter groups (the groups carry their weight decay)."""
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, eta=lars_eta, nesterov=nesterov)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}; choose lars, sgd, adamw or adam")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """LR factor: linear warm-up from ``1/warmup_steps`` to 1, then cosine decay to ``min_factor``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_factor: float = 0.0
) -> LambdaLR:
    """A per-step :func:`warmup_cosine` schedule (call ``scheduler.step()`` after every optimiser step)."""
    return LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_factor))


def per_step_schedule(
    optimizer: Optimizer, trainer: Any, warmup_epochs: float, min_factor: float = 0.0
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry: :func:`warmup_cosine` over the trainer's optimiser steps."""
    total = int(trainer.estimated_stepping_batches)  # also sets up the train loader (num_training_batches)
    batches = trainer.num_training_batches
    per_epoch = total if math.isinf(batches) else math.ceil(batches / trainer.accumulate_grad_batches)
    warmup = min(total, round(warmup_epochs * per_epoch))
    return {"scheduler": warmup_cosine_scheduler(optimizer, warmup, total, min_factor), "interval": "step"}
