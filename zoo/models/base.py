"""The backbone contract every registered model honours (timm's API).

``forward_features(x)`` returns the last feature map (or tokens), ``forward_head(x, pre_logits=False)``
pools it to ``(B, num_features)`` and applies the classifier, ``reset_classifier(n)`` swaps the
classifier (0: none, the pooled features come out), ``set_grad_checkpointing(enable)`` trades compute
for memory. ``modality`` says what the model reads: ``"video"`` (B, C, T, H, W), ``"image"``
(B, C, H, W), ``"audio"`` (B, 1, F, T) log-mel spectrograms, or ``"text"`` token ids (B, L).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

__all__ = ["Backbone", "Modality", "run_stage"]

Modality = Literal["video", "image", "audio", "text"]


def run_stage(stage: nn.Sequential, x: torch.Tensor, grad_checkpointing: bool) -> torch.Tensor:
    """Run ``stage``, re-computing its activations in the backward pass when ``grad_checkpointing``."""
    if grad_checkpointing and x.requires_grad:
        return checkpoint_sequential(stage, len(stage), x, use_reentrant=False)
    return stage(x)


class Backbone(nn.Module):
    """Mixin with the shared parts of the contract; a model defines ``forward_features``.

    A subclass sets ``num_features``, ``num_classes``, ``in_chans`` (vision and audio models) and a
    dropout ``drop`` in its ``__init__``, and names its classifier attribute in ``classifier_name``
    (``classifier_keys`` lists the state-dict prefixes of the classifier for weight loading).
    The default head averages the feature map over every axis after the channel axis.
    """

    modality: Modality = "video"
    classifier_name = "fc"
    classifier_keys: tuple[str, ...] = ("fc.",)
    num_features: int
    num_classes: int
    in_chans: int
    grad_checkpointing: bool = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Global average over every axis after (B, C): (B, C, ...) -> (B, C)."""
        return x.mean(dim=tuple(range(2, x.ndim))) if x.ndim > 2 else x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)  # (B, F)
        if pre_logits:
            return x
        return self.get_classifier()(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def make_classifier(self, num_classes: int) -> nn.Module:
        """A linear classifier over the pooled features; an identity for ``num_classes=0``."""
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` outputs (0: pooled features out)."""
        device = next(self.parameters()).device
        self.num_classes = num_classes
        setattr(self, self.classifier_name, self.make_classifier(num_classes).to(device))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
