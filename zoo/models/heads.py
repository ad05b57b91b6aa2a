"""Projector and predictor MLP heads of self-supervised methods.

SimCLR (Chen et al. 2020, §2.1 and the TF ``projection_head``): ``num_layers`` linear layers, each
but the last followed by BN and ReLU; the last optionally followed by BN (the TF code does, v1 and
v2). Linear layers followed by BN carry no bias (BN's shift replaces it). BYOL/SimSiam-style
predictors are the same MLP without the last BN.

A head is a flat ``nn.Sequential`` ([Linear, BN, ReLU] * (L-1) + [Linear, BN?]), so its state
dict keys are ``0.weight``, ``1.weight``, ``3.weight``, ... . With ``dropout`` > 0 each linear layer is
preceded by a Dropout (GDT, STiCA and SeLaVi heads: p = 0.3), which shifts those indices.
"""

from __future__ import annotations

from torch import nn

__all__ = ["MLPHead", "PredictionHead", "ProjectionHead"]


class MLPHead(nn.Sequential):
    """[(Dropout →) Linear → BN → ReLU] × (num_layers − 1) → (Dropout →) Linear (→ BN).

    Args:
        in_dim: input features (the backbone's ``num_features``).
        hidden_dim: width of the hidden layers.
        out_dim: output features.
        num_layers: linear layers (>= 1).
        batch_norm: BN after the hidden linear layers.
        last_batch_norm: BN after the last linear layer.
        dropout: probability of a Dropout before every linear layer (0: none).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
        dropout: float = 0.0,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Dropout(dropout)] if dropout else []
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers += [nn.Dropout(dropout)] if dropout else []
        layers.append(nn.Linear(dim, out_dim, bias=not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim


class ProjectionHead(MLPHead):
    """SimCLR projector g(·): defaults of the paper (2048 → 2048 → 128, BN, BN after the last layer)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = True,
    ):
        super().__init__(in_dim, hidden_dim, out_dim, num_layers, batch_norm, last_batch_norm)


class PredictionHead(MLPHead):
    """BYOL/SimSiam predictor q(·): Linear → BN → ReLU → Linear (no last BN)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 2):
        super().__init__(in_dim, hidden_dim, out_dim, num_layers, batch_norm=True, last_batch_norm=False)
