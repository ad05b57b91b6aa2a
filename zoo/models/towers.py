"""Several encoders of one checkpoint side by side: a video and an audio tower, a video and a text tower."""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import UsageError

__all__ = ["Towers"]


class Towers(nn.ModuleDict):
    """Backbones by modality; ``towers["video"]`` (or ``towers.video``) is the plain video backbone.

    ``forward(video=..., audio=...)`` runs each tower named by a keyword on its input and returns its
    embedding: the pooled features before any classifier, ``(B, num_features)`` per tower.

    Args:
        towers: modality -> backbone, in order.
    """

    def __init__(self, towers: dict[str, nn.Module]):
        super().__init__(towers)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        unknown = sorted(set(inputs) - set(self.keys()))
        if unknown or not inputs:
            raise UsageError(
                f"give each input by its tower's name ({', '.join(self.keys())}); got {sorted(inputs) or 'none'}"
            )
        embeddings = {}
        for modality, x in inputs.items():
            tower = self[modality]
            embeddings[modality] = tower.forward_head(tower.forward_features(x), pre_logits=True)  # (B, F)
        return embeddings
