"""3D ResNets for video: R3D and R(2+1)D, basic and bottleneck blocks, in every variant the papers use.

A Closer Look at Spatiotemporal Convolutions for Action Recognition (Tran et al., CVPR 2018),
https://arxiv.org/abs/1711.11248. R3D uses full 3x3x3 convolutions; R(2+1)D factorises each into a
1x3x3 spatial and a 3x1x1 temporal convolution with a BN+ReLU between them, with ``M_i`` middle
channels chosen so the pair has the parameters of the 3D convolution (eq. 1 of the paper):
``M = floor(t·d²·N_{i-1}·N_i / (d²·N_{i-1} + t·N_i))``.

Implementations differ in where ``M`` is computed, and the released weights depend on it:

- ``midplanes="block"`` (torchvision; GDT, STiCA, SeLaVi): once per block from the block's
  (in, planes) and reused by every (2+1)D convolution of the block;
- ``midplanes="conv"`` (VMZ; XDC, and CMD's Kenshohara-style nets): each (2+1)D convolution from
  its own (in, out). The two differ in the second convolution of a downsampling block (layer2.0.conv2:
  230 vs 288 middle channels) and in every bottleneck.

Stems: ``"r2plus1d"`` (torchvision/VMZ ``R2Plus1dStem``: 1x7x7 to 45 channels, 3x1x1 to 64),
``"r2plus1d_matched"`` (middle channels from eq. 1 for the 3x7x7 stem, 83 for RGB; CMD),
``"r3d"`` (one 3x7x7 convolution); ``stem_pool`` adds a 1x3x3 max-pool with spatial stride 2 (CMD).
BatchNorm ``eps``/``momentum`` are arguments (XDC's Caffe2 weights need eps 1e-3).

The state-dict layout is torchvision's video ResNet (``stem.0``, ``layer1.0.conv1.0.0``, ...,
``fc``), so R(2+1)D-18 / R3D-18 weights released in that layout (XDC, GDT, ...) load directly.
Input clips are (B, C, T, H, W); ``forward_features`` returns (B, F, T/8, H/16, W/16) without
``stem_pool`` (H/32, W/32 with it).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
from torch import nn

from zoo.models.base import Backbone, run_stage
from zoo.models.layers.conv import Conv3d
from zoo.models.layers.frames import residual_frames
from zoo.registry import register_model

__all__ = ["Conv2Plus1D", "VideoBasicBlock", "VideoBottleneck", "VideoResNet", "middle_channels"]

ConvType = Literal["3d", "2plus1d"]
MidplanesRule = Literal["block", "conv"]
StemType = Literal["r3d", "r2plus1d", "r2plus1d_matched"]
NormLayer = type[nn.BatchNorm3d] | partial


def middle_channels(in_channels: int, out_channels: int, kernel_t: int = 3, kernel_s: int = 3) -> int:
    """R(2+1)D middle width ``M`` matching a ``t × d × d`` convolution's parameter count (eq. 1)."""
    full = in_channels * out_channels * kernel_t * kernel_s * kernel_s
    return full // (in_channels * kernel_s * kernel_s + kernel_t * out_channels)


class Conv2Plus1D(nn.Sequential):
    """1x3x3 spatial conv → BN → ReLU → 3x1x1 temporal conv (strides split the same way)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        stride: int = 1,
        norm_layer: NormLayer = nn.BatchNorm3d,
    ):
        super().__init__(
            Conv3d(in_channels, mid_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            norm_layer(mid_channels),
            nn.ReLU(inplace=True),
            Conv3d(mid_channels, out_channels, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


def _conv(
    conv_type: ConvType,
    in_channels: int,
    out_channels: int,
    mid_channels: int,
    stride: int,
    norm_layer: NormLayer,
) -> nn.Module:
    if conv_type == "2plus1d":
        return Conv2Plus1D(in_channels, out_channels, mid_channels, stride, norm_layer)
    return Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)


def _projection(in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    return nn.Sequential(
        Conv3d(in_channels, out_channels, 1, stride=stride, bias=False), norm_layer(out_channels)
    )


class _VideoResidualBlock(nn.Module):
    """``relu(residual(x) + shortcut(x))``; the shortcut is the identity, or a strided 1x1x1 projection where the
    stride or the channels change. Subclasses build the residual branch (:meth:`_init_residual`).

    Args:
        conv_type: "3d" or "2plus1d".
        in_channels: input channels.
        planes: the block's width (the output has ``expansion * planes`` channels).
        stride: stride of the strided convolution (in T, H and W).
        midplanes: "block" (torchvision) or "conv" (VMZ / Kenshohara) rule for the (2+1)D middle channels.
        norm_layer: BatchNorm3d constructor (eps and momentum bound).
    """

    expansion = 1

    def __init__(
        self,
        conv_type: ConvType,
        in_channels: int,
        planes: int,
        stride: int = 1,
        midplanes: MidplanesRule = "block",
        norm_layer: NormLayer = nn.BatchNorm3d,
    ):
        super().__init__()
        self._init_residual(conv_type, in_channels, planes, stride, midplanes, norm_layer)
        self.relu = nn.ReLU(inplace=True)
        out_channels = planes * self.expansion
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = _projection(in_channels, out_channels, stride, norm_layer)

    def _init_residual(
        self,
        conv_type: ConvType,
        in_channels: int,
        planes: int,
        stride: int,
        midplanes: MidplanesRule,
        norm_layer: NormLayer,
    ) -> None:
        raise NotImplementedError

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)


class VideoBasicBlock(_VideoResidualBlock):
    """Two (2+1)D or 3D convolutions (the first one strided, ``planes`` channels) with a shortcut.

    With the "block" rule both (2+1)D convolutions take the middle channels of (in, planes); with "conv"
    the second one takes those of (planes, planes).
    """

    expansion = 1

    def _init_residual(self, conv_type, in_channels, planes, stride, midplanes, norm_layer) -> None:
        mid1 = middle_channels(in_channels, planes)
        mid2 = mid1 if midplanes == "block" else middle_channels(planes, planes)
        self.conv1 = nn.Sequential(
            _conv(conv_type, in_channels, planes, mid1, stride, norm_layer),
            norm_layer(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(_conv(conv_type, planes, planes, mid2, 1, norm_layer), norm_layer(planes))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2[1].weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class VideoBottleneck(_VideoResidualBlock):
    """1x1x1 reduce → (2+1)D or 3D convolution (strided) → 1x1x1 expand (x4), with a shortcut.

    torchvision computes the middle channels from the block's (in, planes) although the convolution
    maps planes to planes; the "conv" rule (Kenshohara's R(2+1)D, CMD) uses (planes, planes).
    """

    expansion = 4

    def _init_residual(self, conv_type, in_channels, planes, stride, midplanes, norm_layer) -> None:
        out_channels = planes * self.expansion
        mid = middle_channels(in_channels if midplanes == "block" else planes, planes)
        self.conv1 = nn.Sequential(
            Conv3d(in_channels, planes, 1, bias=False), norm_layer(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(
            _conv(conv_type, planes, planes, mid, stride, norm_layer),
            norm_layer(planes),
            nn.ReLU(inplace=True),
        )
        self.conv3 = nn.Sequential(Conv3d(planes, out_channels, 1, bias=False), norm_layer(out_channels))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3[1].weight)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


def _stem(
    stem: StemType, in_chans: int, width: int, stride: int, pool: bool, norm_layer: NormLayer
) -> nn.Sequential:
    if stem == "r3d":
        layers: list[nn.Module] = [
            Conv3d(in_chans, width, (3, 7, 7), (1, stride, stride), (1, 3, 3), bias=False),
            norm_layer(width),
            nn.ReLU(inplace=True),
        ]
    else:  # factorised 1x7x7 spatial then 3x1x1 temporal
        if stem == "r2plus1d":
            mid = max(1, round(45 * width / 64))  # torchvision/VMZ: 45 at width 64
        else:
            mid = middle_channels(in_chans, width, kernel_t=3, kernel_s=7)  # eq. 1: 83 for RGB at width 64
        layers = [
            Conv3d(in_chans, mid, (1, 7, 7), (1, stride, stride), (0, 3, 3), bias=False),
            norm_layer(mid),
            nn.ReLU(inplace=True),
            Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            norm_layer(width),
            nn.ReLU(inplace=True),
        ]
    if pool:
        layers.append(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
    return nn.Sequential(*layers)


class VideoResNet(Backbone):
    """R3D / R(2+1)D over clips (B, C, T, H, W).

    Args:
        conv_type: "3d" (R3D) or "2plus1d" (R(2+1)D).
        layers: blocks per stage.
        widths: inner channels of the four stages (the stem has ``widths[0]``).
        block: "basic" (two convolutions) or "bottleneck" (1x1x1, conv, 1x1x1 with 4x expansion).
        midplanes: "block" (torchvision) or "conv" (VMZ) rule for the (2+1)D middle channels.
        stem: "r2plus1d", "r2plus1d_matched" or "r3d" (default: "r2plus1d" for R(2+1)D, else "r3d").
        stem_stride: spatial stride of the stem's first convolution (1 keeps the input resolution).
        stem_pool: a 1x3x3 max-pool (spatial stride 2) after the stem.
        bn_eps: BatchNorm epsilon.
        bn_momentum: BatchNorm momentum (PyTorch convention: the weight of the new batch).
        num_classes: classifier outputs; 0 replaces ``fc`` by an identity.
        in_chans: input channels.
        zero_init_residual: start every residual branch at zero.
        drop_rate: dropout before the classifier.
        frame_difference: feed the differences of consecutive frames (T − 1 "residual frames",
            Tao et al. 2020, https://arxiv.org/abs/2001.05661) instead of the frames: a static
            background cancels out, moving objects remain.
    """

    def __init__(
        self,
        conv_type: ConvType = "2plus1d",
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        block: Literal["basic", "bottleneck"] = "basic",
        midplanes: MidplanesRule = "block",
        stem: StemType | None = None,
        stem_stride: int = 2,
        stem_pool: bool = False,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        num_classes: int = 400,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
        frame_difference: bool = False,
    ):
        super().__init__()
        for name, value, allowed in [
            ("conv_type", conv_type, ("3d", "2plus1d")),
            ("block", block, ("basic", "bottleneck")),
            ("midplanes", midplanes, ("block", "conv")),
            ("stem", stem, (None, "r3d", "r2plus1d", "r2plus1d_matched")),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        norm_layer = partial(nn.BatchNorm3d, eps=bn_eps, momentum=bn_momentum)
        block_cls = VideoBasicBlock if block == "basic" else VideoBottleneck
        stem = stem or ("r2plus1d" if conv_type == "2plus1d" else "r3d")
        self.stem = _stem(stem, in_chans, widths[0], stem_stride, stem_pool, norm_layer)
        in_channels = widths[0]
        stages = []
        for i, (depth, planes) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            blocks = [block_cls(conv_type, in_channels, planes, stride, midplanes, norm_layer)]
            in_channels = planes * block_cls.expansion
            blocks += [
                block_cls(conv_type, in_channels, planes, 1, midplanes, norm_layer) for _ in range(depth - 1)
            ]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.in_chans = in_chans
        self.num_features = in_channels
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)
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
                if isinstance(m, _VideoResidualBlock):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.frame_difference:
            x = residual_frames(x)  # (B, C, T-1, H, W)
        x = self.stem(x)  # (B, w0, T, H/2, W/2)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = run_stage(stage, x, self.grad_checkpointing)
        return x  # (B, F, T/8, H/16, W/16)


TINY_WIDTHS = (16, 32, 48, 64)


def _create(defaults: dict, overrides: dict) -> VideoResNet:
    return VideoResNet(**{**defaults, **overrides})


@register_model
def r3d_18(**kwargs) -> VideoResNet:
    """R3D-18: 3x3x3 convolutions, 2-2-2-2 blocks, 512 features (33.4M params with a 400-way head)."""
    return _create({"conv_type": "3d"}, kwargs)


@register_model
def r3d_34(**kwargs) -> VideoResNet:
    """R3D-34: 3x3x3 convolutions, 3-4-6-3 blocks, 512 features (63.7M params with a 400-way head)."""
    return _create({"conv_type": "3d", "layers": (3, 4, 6, 3)}, kwargs)


@register_model
def r2plus1d_18(**kwargs) -> VideoResNet:
    """R(2+1)D-18, torchvision layout (GDT, STiCA, SeLaVi): block mid-planes, 512 features (31.5M params)."""
    return _create({"conv_type": "2plus1d"}, kwargs)


@register_model
def r2plus1d_18_vmz(**kwargs) -> VideoResNet:
    """R(2+1)D-18 as VMZ and XDC build it: mid-planes per convolution, Caffe2 BatchNorm (eps 1e-3).

    XDC sets BN momentum to 0.9 to match Caffe2; that only matters in training, so the default here
    stays PyTorch's 0.1 (pass ``bn_momentum=0.9`` to reproduce it).
    """
    return _create({"conv_type": "2plus1d", "midplanes": "conv", "bn_eps": 1e-3}, kwargs)


@register_model
def r2plus1d_34(**kwargs) -> VideoResNet:
    """R(2+1)D-34 as VMZ builds it (IG65M weights): 3-4-6-3 blocks, mid-planes per convolution."""
    return _create(
        {"conv_type": "2plus1d", "layers": (3, 4, 6, 3), "midplanes": "conv", "bn_eps": 1e-3}, kwargs
    )


@register_model
def r2plus1d_26(**kwargs) -> VideoResNet:
    """R(2+1)D-26 of CMD: bottleneck blocks 2-2-2-2, mid-planes per convolution, an 83-channel
    eq. 1 stem followed by a max-pool; 2048 features at T/8, H/32, W/32."""
    defaults = {
        "conv_type": "2plus1d",
        "block": "bottleneck",
        "midplanes": "conv",
        "stem": "r2plus1d_matched",
        "stem_pool": True,
        "zero_init_residual": True,
    }
    return _create(defaults, kwargs)


@register_model
def r3d_10(**kwargs) -> VideoResNet:
    """R3D-10 of CMD (1-1-1-1 basic blocks, 3x7x7 stem + max-pool); its motion-vector encoder takes
    ``in_chans=2, stem_stride=1`` (see :func:`r3d_10_mv`)."""
    return _create(
        {"conv_type": "3d", "layers": (1, 1, 1, 1), "stem_pool": True, "zero_init_residual": True}, kwargs
    )


@register_model
def r3d_10_mv(**kwargs) -> VideoResNet:
    """CMD's motion-vector encoder: R3D-10 over 2-channel (dx, dy) clips, stem without spatial stride."""
    return r3d_10(**{"in_chans": 2, "stem_stride": 1, **kwargs})


@register_model
def r3d_tiny(**kwargs) -> VideoResNet:
    """Tiny R3D (1-1-1-1 blocks, widths 16-32-48-64) for 8-16 frame, 64 px clips on a CPU."""
    return _create({"conv_type": "3d", "layers": (1, 1, 1, 1), "widths": TINY_WIDTHS}, kwargs)


@register_model
def r2plus1d_tiny(**kwargs) -> VideoResNet:
    """Tiny R(2+1)D (1-1-1-1 blocks, widths 16-32-48-64) for 8-16 frame, 64 px clips on a CPU."""
    return _create({"conv_type": "2plus1d", "layers": (1, 1, 1, 1), "widths": TINY_WIDTHS}, kwargs)
