"""TOT's frame embedding and prototypes (Kumar et al., CVPR 2022; the ``MLP`` of its code).

Pre-extracted per-frame features x (D) pass through two fully connected layers with sigmoid activations,
``z = σ(W₂ σ(W₁ x + b₁) + b₂)`` (D → 2E → E), and the prototypes C (K × E, a linear layer without bias)
score every frame against every cluster: ``s = z Cᵀ``. Neither z nor C is L2-normalised (unlike SwAV):
the sigmoid keeps z in (0, 1)ᴱ. Every weight starts from N(0, 0.01²), every bias from 0, as the original.
Parameter names follow the original (``fc1``, ``fc2``, ``prototype_layer``), so its checkpoints load
as they are (:mod:`zoo.convert.tot`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TOTNetwork"]


class TOTNetwork(nn.Module):
    """MLP frame embedding (D → 2E → E, sigmoids) and K bias-free prototypes.

    Args:
        feature_dim: D, the dimension of the input frame features (Breakfast 64, YTI 3000, DA 512).
        embed_dim: E, the embedding dimension (Breakfast and 50 Salads 30, YTI 200).
        num_clusters: K, the number of sub-actions (prototypes).
        init_std: standard deviation of the normal initialisation of every weight (TOT: 0.01).
    """

    def __init__(self, feature_dim: int, embed_dim: int, num_clusters: int, init_std: float = 0.01):
        super().__init__()
        if min(feature_dim, embed_dim, num_clusters) < 1:
            raise ValueError(
                f"feature_dim, embed_dim and num_clusters must be positive; got {feature_dim}, {embed_dim}, "
                f"{num_clusters}"
            )
        self.feature_dim, self.embed_dim, self.num_clusters = feature_dim, embed_dim, num_clusters
        self.fc1 = nn.Linear(feature_dim, 2 * embed_dim)
        self.fc2 = nn.Linear(2 * embed_dim, embed_dim)
        self.prototype_layer = nn.Linear(embed_dim, num_clusters, bias=False)
        for layer in (self.fc1, self.fc2, self.prototype_layer):
            nn.init.normal_(layer.weight, 0.0, init_std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    @property
    def prototypes(self) -> torch.Tensor:
        """C, (K, E)."""
        return self.prototype_layer.weight

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """z = σ(fc2(σ(fc1(x)))): (..., D) -> (..., E)."""
        if x.shape[-1] != self.feature_dim:
            raise ValueError(f"expected frame features of dimension {self.feature_dim}, got {tuple(x.shape)}")
        return torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings z (..., E) and prototype scores s = z Cᵀ (..., K) of frame features (..., D)."""
        z = self.embed(x)
        return z, self.prototype_layer(z)
