"""Direct Binary Embedding (DBE) layer: continuous codes in [0, 1) learned directly, bits at test time.

Liu, Rahimpour, Taalimi, Qi, "End-to-end Binary Representation Learning via Direct Binary Embedding"
(arXiv 1703.04960), used by DCVH (WACV 2018) on both views. The abstracts say the layer turns a
network's continuous activations into binary codes "without an explicit quantisation loss"; the form
``tanh(ReLU(BN(W h + b)))`` (activations in [0, 1), many exactly 0) and the test-time threshold 0.5 are
the zoo's reading, since the method sections could not be read.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DirectBinaryEmbedding", "binarize"]


def binarize(codes: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Bits {0, 1} (int8) of relaxed codes: 1 where ``codes > threshold``.

    Args:
        codes: (..., K) relaxed codes.
        threshold: the cut between 0 and 1.
    """
    return (codes > threshold).to(torch.int8)


class DirectBinaryEmbedding(nn.Module):
    """``tanh(ReLU(BN(W h + b)))``: relaxed codes (B, K) in [0, 1) of features (B, D).

    Args:
        in_features: D of the features.
        num_bits: K, the code length.
        batch_norm: batch-normalise ``W h + b`` (centres the pre-activations, so about half the bits
            start on).
        threshold: the cut of :meth:`bits` (tanh(x) > 0.5 where x > 0.549).
    """

    def __init__(self, in_features: int, num_bits: int, batch_norm: bool = True, threshold: float = 0.5):
        super().__init__()
        if num_bits < 1:
            raise ValueError(f"num_bits must be >= 1, got {num_bits}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.num_bits = num_bits
        self.threshold = threshold
        self.linear = nn.Linear(in_features, num_bits)
        self.norm = nn.BatchNorm1d(num_bits) if batch_norm else nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Relaxed codes (B, K) in [0, 1) of features (B, D)."""
        return torch.tanh(torch.relu(self.norm(self.linear(features))))

    @torch.no_grad()
    def bits(self, features: torch.Tensor) -> torch.Tensor:
        """Binary codes (B, K) in {0, 1} (int8) of features (B, D)."""
        return binarize(self(features), self.threshold)
