"""Decode + preprocess a video the way a checkpoint expects it (what ``zoo.transform_for`` returns)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.data.datasets import VideoDataset
from zoo.data.formats import VideoRecord
from zoo.data.samplers import MultiViewTestSampler, UniformClipSampler
from zoo.data.transforms import build_transform


@dataclass(frozen=True)
class ClipPreprocessor:
    """A video file -> normalised test views ``(views, C, T, H, W)``, views = clips x crops (clip-major).

    Built from a catalog entry's ``preprocess`` record by :meth:`from_entry`; average the model's
    outputs over the views for the multi-view test protocol.
    """

    num_frames: int
    stride: float | None  # None: frames spread evenly over the whole video (SSv2-style)
    size: int
    mean: Sequence[float]
    std: Sequence[float]
    channel_order: str = "rgb"
    clips: int = 1
    crops: int = 1
    short_side: int | None = None

    @classmethod
    def from_entry(cls, entry: Any) -> ClipPreprocessor:
        p = entry.preprocess
        if p.modality != "video" or not p.num_frames or not p.size:
            raise ValueError(f"{entry.name}: preprocess gives no video clip geometry (num_frames, size)")
        return cls(
            num_frames=p.num_frames,
            stride=None if p.sampling_stride is None else float(p.sampling_stride),
            size=p.size,
            mean=p.mean,
            std=p.std,
            channel_order=p.channel_order,
            clips=p.test_clips,
            crops=p.test_crops,
            short_side=p.short_side,
        )

    def _dataset(self, path: Path) -> VideoDataset:
        if self.stride is None:
            sampler = UniformClipSampler(num_frames=self.num_frames, mode="frames")
        else:
            sampler = MultiViewTestSampler(
                num_frames=self.num_frames, stride=self.stride, num_clips=self.clips, num_crops=self.crops
            )
        common = dict(size=self.size, mean=self.mean, std=self.std, channel_order=self.channel_order)
        if self.crops == 3:
            transform = build_transform("three_crop", **common)
        else:
            transform = build_transform(
                "eval", short_side=self.short_side or round(self.size / 0.875), **common
            )
        return VideoDataset([VideoRecord(path)], sampler, transform, labels=False, on_error="raise")

    def __call__(self, video: str | os.PathLike) -> torch.Tensor:
        """Views ``(clips * crops, C, T, H, W)`` of the video file ``video``."""
        sample = self._dataset(Path(video))[0]
        return sample["video_views"] if "video_views" in sample else sample["video"].unsqueeze(0)
