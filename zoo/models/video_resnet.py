"""3D ResNets for video: R3D and R(2+1)D, full size (18 layers) and tiny (SynthMotion on a CPU).

A Closer Look at Spatiotemporal Convolutions for Action Recognition (Tran et al., CVPR 2018),
https://arxiv.org/abs/1711.11248. R3D uses full 3x3x3 convolutions; R(2+1)D factorises each into a
1x3x3 spatial and a 3x1x1 temporal convolution with a BN+ReLU between them, with ``M_i`` middle
channels chosen so the pair has the parameters of the 3D convolution (eq. 1 of the paper):
``M = floor(t·d²·N_{i-1}·N_i / (d²·N_{i-1} + t·N_i))``.

The state-dict layout is torchvision's video ResNet (``stem.0``, ``layer1.0.conv1.0.0``, ...,
``fc``), so R(2+1)D-18 / R3D-18 weights released in that layout (XDC, GDT, ...) load directly.
Input clips are (B, C, T, H, W); ``forward_features`` returns (B, F, T/8, H/16, W/16).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from zoo.models.layers.frames import residual_frames
from zoo.registry import register_model

__all__ = ["Conv2Plus1D", "VideoBasicBlock", "VideoResNet"]

ConvType = Literal["3d", "2plus1d"]


def middle_channels(in_channels: int, out_channels: int) -> int:
    """R(2+1)D middle width ``M`` matching a 3x3x3 convolution's parameter count (eq. 1)."""
    return (in_channels * out_channels * 3 * 3 * 3) // (in_channels * 3 * 3 + 3 * out_channels)


class Conv2Plus1D(nn.Sequential):
    """1x3x3 spatial conv → BN → ReLU → 3x1x1 temporal conv (strides split the same way)."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int = 1):
        super().__init__(
            nn.Conv3d(in_channels, mid_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


def _conv(
    conv_type: ConvType, in_channels: int, out_channels: int, mid_channels: int, stride: int
) -> nn.Module:
    if conv_type == "2plus1d":
        return Conv2Plus1D(in_channels, out_channels, mid_channels, stride)
    return nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)


class VideoBasicBlock(nn.Module):
    """Two (2+1)D or 3D convolutions with an identity (or 1x1x1 projection) shortcut."""

    def __init__(self, conv_type: ConvType, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        mid = middle_channels(in_channels, planes)
        self.conv1 = nn.Sequential(
            _conv(conv_type, in_channels, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(_conv(conv_type, planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, planes, 1, stride=stride, bias=False), nn.BatchNorm3d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _stem(conv_type: ConvType, in_chans: int, width: int) -> nn.Sequential:
    if conv_type == "2plus1d":  # factorised 7x7 spatial then 3x1x1 temporal; 45 mid channels at width 64
        mid = max(1, round(45 * width / 64))
        return nn.Sequential(
            nn.Conv3d(in_chans, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
    return nn.Sequential(
        nn.Conv3d(in_chans, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


class VideoResNet(nn.Module):
    """R3D / R(2+1)D over clips (B, C, T, H, W).

    Args:
        conv_type: "3d" (R3D) or "2plus1d" (R(2+1)D).
        layers: blocks per stage.
        widths: channels of the four stages (the stem has ``widths[0]``).
        num_classes: classifier outputs; 0 replaces ``fc`` by an identity.
        in_chans: input channels.
        zero_init_residual: start every residual branch at zero.
        drop_rate: dropout before the classifier.
        frame_difference: feed the differences of consecutive frames (T − 1 "residual frames",
            Tao et al. 2020, https://arxiv.org/abs/2001.05661) instead of the frames: a static
            background cancels out, moving objects remain.
    """

    classifier_keys = ("fc.",)

    def __init__(
        self,
        conv_type: ConvType = "2plus1d",
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        num_classes: int = 400,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
        frame_difference: bool = False,
    ):
        super().__init__()
        if conv_type not in ("3d", "2plus1d"):
            raise ValueError(f"conv_type must be '3d' or '2plus1d', got {conv_type!r}")
        self.stem = _stem(conv_type, in_chans, widths[0])
        in_channels = widths[0]
        stages = []
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = [VideoBasicBlock(conv_type, in_channels, planes, stride)]
            blocks += [VideoBasicBlock(conv_type, planes, planes) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_channels
        self.drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.num_classes = num_classes
        self.grad_checkpointing = False
        self.frame_difference = frame_difference
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, VideoBasicBlock):
                    nn.init.zeros_(m.conv2[1].weight)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frame_difference:
            x = residual_frames(x)  # (B, C, T-1, H, W)
        x = self.stem(x)  # (B, w0, T, H/2, W/2)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            if self.grad_checkpointing and x.requires_grad:
                x = checkpoint_sequential(stage, len(stage), x, use_reentrant=False)
            else:
                x = stage(x)
        return x  # (B, F, T/8, H/16, W/16)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(-3, -2, -1))  # global average pool over (T, H, W) -> (B, F)
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


TINY_WIDTHS = (16, 32, 48, 64)


@register_model
def r3d_18(**kwargs) -> VideoResNet:
    """R3D-18: 3x3x3 convolutions, 2-2-2-2 blocks, 512 features (33M params with a 400-way head)."""
    return VideoResNet(**{"conv_type": "3d", **kwargs})


@register_model
def r2plus1d_18(**kwargs) -> VideoResNet:
    """R(2+1)D-18: factorised convolutions, 2-2-2-2 blocks, 512 features (31M params)."""
    return VideoResNet(**{"conv_type": "2plus1d", **kwargs})


@register_model
def r3d_tiny(**kwargs) -> VideoResNet:
    """Tiny R3D (1-1-1-1 blocks, widths 16-32-48-64) for 8-16 frame, 64 px clips on a CPU."""
    return VideoResNet(**{"conv_type": "3d", "layers": (1, 1, 1, 1), "widths": TINY_WIDTHS, **kwargs})


@register_model
def r2plus1d_tiny(**kwargs) -> VideoResNet:
    """Tiny R(2+1)D (1-1-1-1 blocks, widths 16-32-48-64) for 8-16 frame, 64 px clips on a CPU."""
    return VideoResNet(**{"conv_type": "2plus1d", "layers": (1, 1, 1, 1), "widths": TINY_WIDTHS, **kwargs})
