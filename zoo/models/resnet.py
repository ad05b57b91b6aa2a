"""2D ResNets: ResNet-10/18/34/50 for images (SimCLR's width multiplier 1x/2x/4x) and for log-mel audio.

Deep Residual Learning for Image Recognition (He et al., CVPR 2016), https://arxiv.org/abs/1512.03385;
A Simple Framework for Contrastive Learning of Visual Representations (Chen et al., ICML 2020),
https://arxiv.org/abs/2002.05709 — its ResNet-50 (Nx) multiplies every channel count, the stem
included, by N; the stride of a downsampling bottleneck sits on the 3x3 convolution ("v1.5"), as in
the SimCLR TF code and torchvision. The state-dict layout is torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ..., ``fc``), so converted checkpoints map one-to-one.

Small nets of the multimodal methods: ResNet-10 (BasicBlock 1-1-1-1) encodes CMD's keyframes; the
audio encoders of GDT, STiCA and SeLaVi ("ResNet-9", the same 1-1-1-1 net) and of XDC (ResNet-18)
read a one-channel log-mel spectrogram (B, 1, F, T) through a 7x7 stride-2 stem.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.models.base import Backbone, run_stage
from zoo.models.layers.conv import Conv2d
from zoo.registry import register_model

__all__ = ["AudioResNet", "BasicBlock", "Bottleneck", "ResNet"]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> Conv2d:
    return Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> Conv2d:
    return Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with an identity (or projection) shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(Backbone):
    """ResNet over images (B, C, H, W); ``forward_features`` returns the last map (B, F, H/32, W/32).

    Args:
        block: ``BasicBlock`` (18/34) or ``Bottleneck`` (50+).
        layers: blocks per stage.
        width_multiplier: SimCLR's Nx; every stage (and the stem) has N times the channels.
        num_classes: classifier outputs; 0 replaces ``fc`` by an identity (features out).
        in_chans: input channels.
        zero_init_residual: start every residual branch at zero (last BN gamma = 0).
        drop_rate: dropout before the classifier.
    """

    modality = "image"

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        width_multiplier: int = 1,
        num_classes: int = 1000,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        stem_width = 64 * width_multiplier
        self.conv1 = Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = stem_width
        stages = []
        for i, depth in enumerate(layers):
            planes = 64 * 2**i * width_multiplier
            stride = 1 if i == 0 else 2
            stages.append(self._make_stage(block, in_channels, planes, depth, stride))
            in_channels = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.in_chans = in_chans
        self.num_features = in_channels
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)
        self._init_weights(zero_init_residual)

    @staticmethod
    def _make_stage(
        block: type[BasicBlock | Bottleneck], in_channels: int, planes: int, depth: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_channels != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(in_channels, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(in_channels, planes, stride, downsample)]
        blocks += [block(planes * block.expansion, planes) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64w, H/4, W/4)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = run_stage(stage, x, self.grad_checkpointing)
        return x  # (B, F, H/32, W/32)


class AudioResNet(ResNet):
    """ResNet over log-mel spectrograms (B, 1, F, T): one input channel, features out by default."""

    modality = "audio"

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 0,
        in_chans: int = 1,
        **kwargs,
    ):
        super().__init__(block, layers, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def resnet10(**kwargs) -> ResNet:
    """ResNet-10 (BasicBlock, 1-1-1-1), 512 features; CMD's keyframe encoder."""
    return ResNet(BasicBlock, (1, 1, 1, 1), **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2), 512 features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (BasicBlock, 3-4-6-3), 512 features."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3), 2048 features; SimCLR ResNet-50 (1x)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50_2x(**kwargs) -> ResNet:
    """SimCLR ResNet-50 (2x): every width doubled, 4096 features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **{"width_multiplier": 2, **kwargs})


@register_model
def resnet50_4x(**kwargs) -> ResNet:
    """SimCLR ResNet-50 (4x): every width quadrupled, 8192 features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **{"width_multiplier": 4, **kwargs})


@register_model
def resnet9_audio(**kwargs) -> AudioResNet:
    """ "ResNet-9" audio encoder of GDT, STiCA and SeLaVi: BasicBlock 1-1-1-1 over (B, 1, F, T), 512 features.

    GDT and STiCA checkpoints keep an unused 1000-way ``fc`` (build with ``num_classes=1000`` to load
    them strictly); SeLaVi's have none.
    """
    return AudioResNet(BasicBlock, (1, 1, 1, 1), **kwargs)


@register_model
def resnet18_audio(**kwargs) -> AudioResNet:
    """ResNet-18 audio encoder (XDC; GDT's ``resnet18`` option) over (B, 1, F, T), 512 features."""
    return AudioResNet(BasicBlock, (2, 2, 2, 2), **kwargs)
