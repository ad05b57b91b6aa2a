"""Linear probe on frozen (cached) features: multinomial logistic regression.

Two solvers: ``lbfgs`` — full-batch L-BFGS on the L2-regularised cross-entropy (a convex problem:
deterministic, no learning rate to tune; the protocol of CLIP's and SimCLR's small-data linear
evaluations), and ``sgd`` — mini-batch SGD with momentum and a cosine schedule (the usual protocol on
large feature sets). Features are standardised with the training mean and std; the returned
classifier folds that in, so it applies to raw features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

__all__ = ["LinearProbeResult", "linear_probe", "train_linear_classifier"]

Solver = Literal["lbfgs", "sgd"]


@dataclass
class LinearProbeResult:
    """Accuracies in percent and the trained classifier (on raw features)."""

    top1: float
    top5: float | None
    train_top1: float
    classifier: nn.Linear


def train_linear_classifier(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    solver: Solver = "lbfgs",
    weight_decay: float = 1e-4,
    max_iter: int = 500,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    standardize: bool = True,
    seed: int = 0,
) -> nn.Linear:
    """Fit ``Linear(F, num_classes)`` minimising CE + (weight_decay/2)·‖W‖² on ``features`` (N, F)."""
    x, y = features.float(), labels.long()
    mean = x.mean(0) if standardize else torch.zeros(x.shape[1])
    std = x.std(0).clamp_min(1e-6) if standardize else torch.ones(x.shape[1])
    x = (x - mean) / std
    torch.manual_seed(seed)
    linear = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)

    def objective(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(linear(xb), yb) + 0.5 * weight_decay * linear.weight.square().sum()

    if solver == "lbfgs":
        optimizer = torch.optim.LBFGS(
            linear.parameters(),
            lr=1.0,
            max_iter=max_iter,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = objective(x, y)
            loss.backward()
            return loss

        optimizer.step(closure)
    elif solver == "sgd":
        optimizer = torch.optim.SGD(linear.parameters(), lr=lr, momentum=0.9)
        steps_per_epoch = math.ceil(len(x) / batch_size)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(batch_size):
                optimizer.zero_grad()
                objective(x[idx], y[idx]).backward()
                optimizer.step()
                scheduler.step()
    else:
        raise ValueError(f"solver must be 'lbfgs' or 'sgd', got {solver!r}")

    with torch.no_grad():  # fold the standardisation: W (x - m)/s + b = (W/s) x + (b - W m/s)
        weight = linear.weight / std
        folded = nn.Linear(x.shape[1], num_classes)
        folded.weight.copy_(weight)
        folded.bias.copy_(linear.bias - weight @ mean)
    return folded


@torch.no_grad()
def _accuracy(classifier: nn.Linear, features: torch.Tensor, labels: torch.Tensor, top_k: int) -> float:
    logits = classifier(features.float())
    return 100 * float(
        multiclass_accuracy(logits, labels.long(), classifier.out_features, average="micro", top_k=top_k)
    )


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    **kwargs,
) -> LinearProbeResult:
    """Train on the training features, report top-1/top-5 (percent) on the test features.

    ``kwargs`` go to :func:`train_linear_classifier` (solver, weight_decay, epochs, ...).
    """
    num_classes = int(num_classes or max(train_labels.max(), test_labels.max()) + 1)
    classifier = train_linear_classifier(train_features, train_labels, num_classes, **kwargs)
    return LinearProbeResult(
        top1=_accuracy(classifier, test_features, test_labels, 1),
        top5=_accuracy(classifier, test_features, test_labels, 5) if num_classes > 5 else None,
        train_top1=_accuracy(classifier, train_features, train_labels, 1),
        classifier=classifier,
    )
