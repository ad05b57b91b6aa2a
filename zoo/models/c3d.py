"""C3D: eight 3x3x3 convolutions and five max-pools.

Learning Spatiotemporal Features with 3D Convolutional Networks (Tran et al., ICCV 2015),
https://arxiv.org/abs/1412.0767. Two variants:

- ``c3d``: the original (Sports-1M weights): convolutions with bias and no BN, ``pool5`` padded
  spatially, then ``fc6``/``fc7`` (4096) over the flattened 512×1×4×4 map, so it takes 16×112×112
  clips only; ``num_features`` is fc7's 4096.
- ``c3d_bn``: the self-supervised variant (VCOP, Background Erasing, CMD): a BN after every
  convolution, no ``pool5``, global average pooling to 512 features, any clip size.

Keys follow the common PyTorch C3D (``conv1``, ``conv3a``, ..., ``fc6``, ``fc7``, ``fc8``) and, with BN,
``bn1``, ``bn3a``, ... and ``fc``. ``forward_features`` returns conv5b's map (B, 512, T/8, H/16, W/16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.base import Backbone
from zoo.models.layers.conv import Conv3d
from zoo.registry import register_model

__all__ = ["C3D"]

# (layer suffix, output channels, pool after it: (kernel = stride) or None)
C3D_LAYERS = (
    ("1", 64, (1, 2, 2)),
    ("2", 128, (2, 2, 2)),
    ("3a", 256, None),
    ("3b", 256, (2, 2, 2)),
    ("4a", 512, None),
    ("4b", 512, (2, 2, 2)),
    ("5a", 512, None),
    ("5b", 512, None),
)


class C3D(Backbone):
    """C3D over clips (B, C, T, H, W).

    Args:
        num_classes: classifier outputs; 0 replaces the classifier by an identity.
        in_chans: input channels.
        batch_norm: a BatchNorm3d after every convolution.
        classic_head: the original ``pool5`` → fc6 → fc7 head (16×112×112 clips); otherwise global
            average pooling.
        drop_rate: dropout after fc6 and fc7, or before the classifier without ``classic_head``.
    """

    def __init__(
        self,
        num_classes: int = 487,
        in_chans: int = 3,
        batch_norm: bool = False,
        classic_head: bool = True,
        drop_rate: float = 0.5,
    ):
        super().__init__()
        self.classic_head = classic_head
        self.classifier_name = "fc8" if classic_head else "fc"
        self.classifier_keys = (f"{self.classifier_name}.",)
        self.stages: list[tuple[str, tuple[int, int, int] | None]] = []
        channels = in_chans
        for suffix, width, pool in C3D_LAYERS:
            setattr(self, f"conv{suffix}", Conv3d(channels, width, 3, padding=1))
            if batch_norm:
                setattr(self, f"bn{suffix}", nn.BatchNorm3d(width))
            self.stages.append((suffix, pool))
            channels = width
        if classic_head:
            self.fc6 = nn.Linear(channels * 4 * 4, 4096)  # pool5 of a 16×112×112 clip: 512×1×4×4
            self.fc7 = nn.Linear(4096, 4096)
            channels = 4096
        self.in_chans = in_chans
        self.num_features = channels
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        setattr(self, self.classifier_name, self.make_classifier(num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for suffix, pool in self.stages:
            x = getattr(self, f"conv{suffix}")(x)
            bn = getattr(self, f"bn{suffix}", None)
            x = F.relu(bn(x) if bn is not None else x)
            if pool is not None:
                x = F.max_pool3d(x, pool, pool)
        return x  # (B, 512, T/8, H/16, W/16)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.classic_head:
            return super().pool(x)
        x = F.max_pool3d(x, 2, 2, padding=(0, 1, 1))  # pool5: (B, 512, 1, 4, 4)
        if x.shape[2:] != (1, 4, 4):
            raise ValueError(
                f"C3D's classic head (fc6) reads the 1×4×4 pool5 map of a 16×112×112 clip, got a "
                f"{'×'.join(map(str, x.shape[2:]))} map: give 16×112×112 clips, or use c3d_bn / classic_head=False"
            )
        x = self.drop(F.relu(self.fc6(x.flatten(1))))
        return F.relu(self.fc7(x))  # (B, 4096)


@register_model
def c3d(**kwargs) -> C3D:
    """The original C3D (Sports-1M, 487 classes): 80M params, fc7 features (4096), 16×112×112 clips."""
    return C3D(**kwargs)


@register_model
def c3d_bn(**kwargs) -> C3D:
    """C3D with BN and global average pooling (VCOP, Background Erasing, CMD): 512 features."""
    return C3D(**{"batch_norm": True, "classic_head": False, "num_classes": 0, **kwargs})
