"""Input-side temporal operations shared by video backbones."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def residual_frames(video: torch.Tensor, keep_length: bool = False) -> torch.Tensor:
    """Differences of consecutive frames ("residual frames", Tao et al. 2020, arXiv:2001.05661).

    A static background cancels out and moving objects remain. ``(B, C, T, H, W)`` -> ``(B, C, T-1, H, W)``;
    ``keep_length`` appends a zero frame so the result keeps ``T`` frames (tubelet sizes still divide it).
    """
    diff = video[:, :, 1:] - video[:, :, :-1]
    return F.pad(diff, (0, 0, 0, 0, 0, 1)) if keep_length else diff
