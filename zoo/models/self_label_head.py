"""The classification heads of SeLaVi (Asano, Patrick, Rupprecht, Vedaldi, NeurIPS 2020).

Each head maps a pooled encoder feature to the logits of K self-label clusters through a one-hidden-layer
MLP with dropout: Dropout → Linear (no bias) → BN → ReLU → Dropout → Linear. SeLaVi gives every modality
``heads`` of them (ten in the released models), one per clustering of the data.

A head is a flat ``nn.Sequential``, so its state dict keys are ``1.weight`` (hidden), ``2.*`` (BN) and
``5.weight`` / ``5.bias`` (the cluster layer); :attr:`SelfLabelHead.classifier` is the last layer, whose
rows are the clusters (permuted by SeLaVi's modality alignment).
"""

from __future__ import annotations

from torch import nn

__all__ = ["SelfLabelHead"]


class SelfLabelHead(nn.Sequential):
    """Dropout → Linear(in, hidden, no bias) → BN1d → ReLU → Dropout → Linear(hidden, K): cluster logits.

    Args:
        in_dim: input features (the encoder's ``num_features``).
        num_clusters: K, the number of self-label clusters.
        hidden_dim: width of the hidden layer.
        dropout: dropout probability before each linear layer.
    """

    def __init__(self, in_dim: int, num_clusters: int, hidden_dim: int = 512, dropout: float = 0.3):
        super().__init__(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_clusters),
        )

    @property
    def classifier(self) -> nn.Linear:
        """The last layer: row k of its weight (and bias) belongs to cluster k."""
        return self[-1]
