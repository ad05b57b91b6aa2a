"""Per-frame 2D CNN features for clips and long sequences.

Runs any 2D backbone on every frame of a clip (B, C, T, H, W) and returns one vector per frame
(B, T, F): the input of temporal models (action segmentation, re-identification, video QA) that
read frame features. The head averages the frames and applies a classifier.

:class:`SmallConvNet` is a per-frame network for small frames trained from scratch: a few 3×3 convolutions
at full resolution and a spatial max over the last map, so that a small object still decides the feature
when the background fills most of the frame (``frame_convnet``).
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from zoo.models.base import Backbone, run_stage
from zoo.models.layers.conv import Conv2d
from zoo.registry import build, register_model

__all__ = ["FrameFeatures", "SmallConvNet", "per_frame_features"]


def per_frame_features(
    backbone: Backbone, video: torch.Tensor, frames_per_batch: int | None = None
) -> torch.Tensor:
    """A 2D backbone's pooled features of every frame: (B, C, T, H, W) -> (B, T, F).

    Args:
        backbone: an image backbone (``forward_features`` then ``forward_head(pre_logits=True)``).
        video: the clips.
        frames_per_batch: frames through the backbone at once (None: all).
    """
    frames = rearrange(video, "b c t h w -> (b t) c h w")
    features = [
        backbone.forward_head(backbone.forward_features(part), pre_logits=True)
        for part in frames.split(frames_per_batch or frames.shape[0])
    ]  # each (n, F)
    return rearrange(torch.cat(features), "(b t) f -> b t f", b=video.shape[0])


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
        return per_frame_features(self.backbone, x, self.frames_per_batch)  # (B, T, F)

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


class SmallConvNet(Backbone):
    """A few 3×3 convolution–BatchNorm–ReLU layers over an image (B, C, H, W), each but the last followed by
    2×2 max pooling; ``forward_features`` returns the last map (B, F, H / 2^(n-1), W / 2^(n-1)).

    Args:
        widths: output channels of each convolution; the last is ``num_features``.
        in_chans: input channels.
        spatial_pool: ``"max"`` (the strongest response anywhere: a small object is not averaged away) or
            ``"avg"`` over the last map.
        position_pool: append where the object is to the pooled features: the soft-argmax (x, y) of a learned
            1×1 saliency map over the last map (``num_features`` grows by 2); a spatial pool alone discards
            it, so a sequence of frame features could not hold a trajectory.
        num_classes: classifier outputs; 0 for none.
        drop_rate: dropout before the classifier.
    """

    modality = "image"

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        in_chans: int = 3,
        spatial_pool: Literal["max", "avg"] = "max",
        position_pool: bool = False,
        num_classes: int = 0,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if spatial_pool not in ("max", "avg"):
            raise ValueError(f"spatial_pool: expected 'max' or 'avg', got {spatial_pool!r}")
        layers: list[nn.Module] = []
        channels = in_chans
        for i, width in enumerate(widths):
            layers += [Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.spatial_pool = spatial_pool
        self.saliency = Conv2d(channels, 1, 1) if position_pool else None
        self.in_chans = in_chans
        self.num_features = channels + 2 * position_pool
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return run_stage(self.layers, x, self.grad_checkpointing)  # (B, F, h, w)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.amax(dim=(2, 3)) if self.spatial_pool == "max" else x.mean(dim=(2, 3))  # (B, F)
        if self.saliency is None:
            return pooled
        weights = rearrange(self.saliency(x), "b 1 h w -> b 1 (h w)").softmax(dim=-1)
        coordinates = rearrange(coordinate_maps(x), "b c h w -> b c (h w)")  # (B, 2, h·w)
        position = (weights * coordinates).sum(dim=-1)  # (B, 2): soft-argmax (x, y)
        return torch.cat([pooled, position], dim=1)  # (B, F + 2)


def coordinate_maps(x: torch.Tensor) -> torch.Tensor:
    """The x and y of every pixel of ``x`` (B, C, H, W), from -1 (left, top) to 1: (B, 2, H, W)."""
    height, width = x.shape[-2:]
    ys = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x then y
    return grid.expand(x.shape[0], -1, -1, -1)


@register_model
def convnet_small(**kwargs) -> SmallConvNet:
    """Three 3×3 convolutions (32-64-128) with spatial max pooling: 128 features of an image."""
    return SmallConvNet(**kwargs)


@register_model
def frame_convnet(**kwargs) -> FrameFeatures:
    """:class:`SmallConvNet` per frame: (B, 3, T, H, W) -> (B, T, 128); small frames trained from scratch."""
    return FrameFeatures(**{"backbone": "convnet_small", **kwargs})
