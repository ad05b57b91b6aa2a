"""Per-frame 2D CNN features for clips and long sequences.

Runs any 2D backbone on every frame of a clip (B, C, T, H, W) and returns one vector per frame
(B, T, F): the input of temporal models (action segmentation, re-identification, video QA) that
read frame features. The head averages the frames and applies a classifier.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from zoo.models.base import Backbone
from zoo.registry import build, register_model

__all__ = ["FrameFeatures"]


class FrameFeatures(Backbone):
    """A 2D backbone applied frame by frame.

    Args:
        backbone: the per-frame network: a registered 2D architecture name, or a module with
            ``forward_features`` and ``forward_head(x, pre_logits=True)`` (its classifier is removed).
        num_classes: classifier outputs over the frame-averaged features; 0 for none.
        drop_rate: dropout before the classifier.
        frames_per_batch: frames sent through the backbone at once (memory bound for long
            sequences); all of them by default.
        backbone_args: arguments of the registered architecture.
    """

    classifier_keys = ("fc.",)

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 0,
        drop_rate: float = 0.0,
        frames_per_batch: int | None = None,
        backbone_args: dict | None = None,
    ):
        super().__init__()
        if isinstance(backbone, str):
            backbone = build(backbone, **{**(backbone_args or {}), "num_classes": 0})
        else:
            backbone.reset_classifier(0)
        self.backbone = backbone
        self.frames_per_batch = frames_per_batch
        self.in_chans = getattr(backbone, "in_chans", 3)
        self.num_features = backbone.num_features
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        self.backbone.set_grad_checkpointing(enable)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        chunk = self.frames_per_batch or frames.shape[0]
        features = [
            self.backbone.forward_head(self.backbone.forward_features(part), pre_logits=True)
            for part in frames.split(chunk)
        ]  # each (n, F)
        return rearrange(torch.cat(features), "(b t) f -> b t f", b=batch)  # (B, T, F)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)  # average over frames: (B, T, F) -> (B, F)


@register_model
def frame_resnet18(**kwargs) -> FrameFeatures:
    """ResNet-18 per frame: (B, 3, T, H, W) -> (B, T, 512)."""
    return FrameFeatures(**{"backbone": "resnet18", **kwargs})


@register_model
def frame_resnet50(**kwargs) -> FrameFeatures:
    """ResNet-50 per frame: (B, 3, T, H, W) -> (B, T, 2048) (the usual re-ID and segmentation features)."""
    return FrameFeatures(**{"backbone": "resnet50", **kwargs})
