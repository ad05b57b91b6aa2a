"""I3D: Inception-v1 inflated to 3D, with TensorFlow "SAME" padding.

Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset (Carreira & Zisserman, CVPR 2017),
https://arxiv.org/abs/1705.07750. Every convolution is Conv3d (no bias) → BN → ReLU; every convolution
and max-pool pads its input as TensorFlow's "SAME" does (computed from the input size, the extra pixel
after), so the Kinetics weights converted from TF give the TF numbers for any clip size. BN uses TF's
eps 1e-3 (momentum 0.01 in PyTorch's convention).

The state-dict layout is the common PyTorch port's (``InceptionI3d``: ``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_mean``, ..., ``logits.conv3d.weight``). Background Erasing and DSM train the
same network under other names (``conv3d_1a_7x7.conv3d`` / ``.batch3d``, ``mixed_3b.branch_1.1``).
Clips are (B, C, T, H, W); ``forward_features`` returns (B, 1024, T/8, H/32, W/32) (rounded up).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from zoo.models.base import Backbone
from zoo.models.layers.conv import Conv3d
from zoo.registry import register_model

__all__ = ["InceptionI3D", "InceptionModule", "MaxPool3dSame", "Unit3D", "same_padding"]

Triple = tuple[int, int, int]


def same_padding(size: Triple, kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """TF "SAME" padding of a (T, H, W) input, in ``F.pad`` order (W before/after, H ..., T ...).

    The output has ``ceil(size / stride)`` positions; the padding needed for that is split with the
    extra pixel after.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class MaxPool3dSame(nn.MaxPool3d):
    """Max-pool with TF "SAME" padding (zeros: the inputs follow a ReLU, so zero is the minimum)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, same_padding(x.shape[-3:], self.kernel_size, self.stride)))


class Unit3D(nn.Module):
    """Conv3d with TF "SAME" padding → BN → ReLU (``conv3d``, ``bn``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: (t, h, w) kernel.
        stride: (t, h, w) stride.
        norm_layer: BatchNorm3d constructor (eps and momentum bound), or None for no BN (a conv bias).
        activation: apply a ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        norm_layer: type[nn.BatchNorm3d] | partial | None = nn.BatchNorm3d,
        activation: bool = True,
    ):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv3d = Conv3d(in_channels, out_channels, kernel_size, stride, bias=norm_layer is None)
        self.bn = norm_layer(out_channels) if norm_layer is not None else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[-3:], self.kernel_size, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 → 3x3; 1x1 → 3x3; 3x3 max-pool → 1x1.

    Args:
        in_channels: input channels.
        widths: (b0, b1a, b1b, b2a, b2b, b3b) output channels of the six convolutions.
        norm_layer: BatchNorm3d constructor.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], norm_layer: type[nn.BatchNorm3d] | partial):
        super().__init__()
        unit = partial(Unit3D, norm_layer=norm_layer)
        self.b0 = unit(in_channels, widths[0])
        self.b1a = unit(in_channels, widths[1])
        self.b1b = unit(widths[1], widths[2], (3, 3, 3))
        self.b2a = unit(in_channels, widths[3])
        self.b2b = unit(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = unit(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(branches, dim=1)


# Inception-v1 (GoogLeNet) mixed blocks: (b0, b1a, b1b, b2a, b2b, b3b) widths, as in the paper's Table 1
MIXED_WIDTHS = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class Logits(nn.Module):
    """The 1x1x1 convolution (with bias) of the original classifier, applied to pooled features (B, F)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv3d = Conv3d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d(x[:, :, None, None, None]).flatten(1)  # (B, F) -> (B, num_classes)


class InceptionI3D(Backbone):
    """I3D over clips (B, C, T, H, W).

    Args:
        num_classes: classifier outputs; 0 replaces ``logits`` by an identity.
        in_chans: input channels (3 for RGB, 2 for optical flow).
        drop_rate: dropout before the classifier (0.5 in the original).
        bn_eps: BatchNorm epsilon (TF's 1e-3; 1e-5 in the Background Erasing / DSM code).
        bn_momentum: BatchNorm momentum (PyTorch convention).
    """

    classifier_name = "logits"
    classifier_keys = ("logits.",)

    def __init__(
        self,
        num_classes: int = 400,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
    ):
        super().__init__()
        norm_layer = partial(nn.BatchNorm3d, eps=bn_eps, momentum=bn_momentum)
        self.Conv3d_1a_7x7 = Unit3D(in_chans, 64, (7, 7, 7), (2, 2, 2), norm_layer)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, norm_layer=norm_layer)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), norm_layer=norm_layer)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        for name, widths in MIXED_WIDTHS.items():
            if name in pools:
                pool_name, kernel = pools[name]
                setattr(self, pool_name, MaxPool3dSame(kernel, (2, 2, 2)))
            module = InceptionModule(channels, widths, norm_layer)
            setattr(self, name, module)
            channels = module.out_channels
        self.endpoints = [name for name, _ in self.named_children()]  # in the order of the forward pass
        self.in_chans = in_chans
        self.num_features = channels  # 1024
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.logits: nn.Module = self.make_classifier(num_classes)

    def make_classifier(self, num_classes: int) -> nn.Module:
        return Logits(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.endpoints:
            module = getattr(self, name)
            if self.grad_checkpointing and x.requires_grad and isinstance(module, InceptionModule):
                x = checkpoint(module, x, use_reentrant=False)
            else:
                x = module(x)
        return x  # (B, 1024, T/8, H/32, W/32)


@register_model
def i3d(**kwargs) -> InceptionI3D:
    """I3D (Inception-v1 inflated), RGB input, 1024 features (12.7M params with a 400-way head)."""
    return InceptionI3D(**kwargs)
