"""Clip samplers: which frame indices of a video make up each clip.

A sampler is a pure function of the video length (``video_len``), its frame rate (``fps``) and a random
generator (``numpy.random.Generator``, ``torch.Generator``, an ``int`` seed or ``None`` for fresh entropy).
It returns an ``int64`` array of shape ``(num_clips, num_frames)``: one row per clip, always 2-D, even for
samplers that draw a single clip. The same inputs and the same generator state give the same indices.

Temporal layout of a clip: ``num_frames`` frames ``stride`` frames apart, so it spans
``(num_frames - 1) * stride + 1`` frames. ``target_fps`` (when set) replaces ``stride`` by ``fps / target_fps``
so that clips cover the same time whatever the video's frame rate (fractional strides are rounded per frame).

Videos shorter than a clip's span are handled by ``short_video``:

- ``"clamp"`` (default): the clip starts at frame 0 and indices past the end repeat the last frame;
- ``"loop"``: indices wrap around (``i % video_len``), the video plays again from the start;
- ``"stretch"``: the clip is squeezed to the video (``num_frames`` indices evenly spread over it, some repeat
  when the video has fewer than ``num_frames`` frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from zoo.errors import UsageError

__all__ = [
    "ClipSampler",
    "MultiClipViewsSampler",
    "MultiViewTestSampler",
    "RandomClipSampler",
    "Rng",
    "UniformClipSampler",
    "as_numpy_rng",
    "build_sampler",
    "clip_span",
]

Rng = np.random.Generator | torch.Generator | int | None
ShortVideo = Literal["clamp", "loop", "stretch"]


class ClipSampler(Protocol):
    """What every sampler offers: ``num_clips`` rows of ``num_frames`` indices per call."""

    num_frames: int
    num_clips: int

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray: ...


def as_numpy_rng(rng: Rng) -> np.random.Generator:
    """A numpy generator from any accepted ``rng``; a ``torch.Generator`` is advanced by one draw."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng).item())
        return np.random.default_rng(seed)
    return np.random.default_rng(rng)


def _check_length(video_len: int) -> None:
    if video_len < 1:
        raise ValueError(f"cannot sample a clip from a video with {video_len} frames")


@dataclass(frozen=True)
class _ClipGeometry:
    """Clip length, stride and short-video policy shared by every sampler."""

    num_frames: int = 8
    stride: float = 1.0
    target_fps: float | None = None
    short_video: ShortVideo = "clamp"

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise UsageError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.stride <= 0:
            raise UsageError(f"stride must be > 0, got {self.stride}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise UsageError(f"target_fps must be > 0, got {self.target_fps}")
        if self.short_video not in ("clamp", "loop", "stretch"):
            raise UsageError(f"short_video must be 'clamp', 'loop' or 'stretch', got {self.short_video!r}")

    def effective_stride(self, fps: float) -> float:
        if self.target_fps is None:
            return float(self.stride)
        if fps <= 0:
            raise ValueError(f"target_fps needs the video's fps, got fps={fps}")
        return fps / self.target_fps

    def offsets(self, fps: float) -> np.ndarray:
        """Frame offsets of a clip from its first frame, ``(num_frames,)``."""
        return np.round(np.arange(self.num_frames) * self.effective_stride(fps)).astype(np.int64)

    def span(self, fps: float) -> int:
        """Number of frames a clip covers, first to last inclusive."""
        return int(self.offsets(fps)[-1]) + 1

    def clips(self, starts: np.ndarray, video_len: int, fps: float) -> np.ndarray:
        """Indices ``(len(starts), num_frames)`` for clips starting at ``starts``; short videos per policy."""
        _check_length(video_len)
        offsets = self.offsets(fps)
        if offsets[-1] + 1 <= video_len:
            return np.asarray(starts, dtype=np.int64)[:, None] + offsets[None, :]
        # the video is shorter than one clip: every clip is the same, starting at frame 0
        if self.short_video == "loop":
            row = offsets % video_len
        elif self.short_video == "clamp":
            row = np.minimum(offsets, video_len - 1)
        else:
            row = np.round(np.linspace(0, video_len - 1, self.num_frames)).astype(np.int64)
        return np.repeat(row[None, :], len(starts), axis=0)


def _evenly_spaced_starts(num_clips: int, max_start: int) -> np.ndarray:
    """``num_clips`` start frames spread over ``[0, max_start]``; one clip sits in the middle."""
    if num_clips == 1:
        return np.array([max(max_start, 0) // 2], dtype=np.int64)
    return np.round(np.linspace(0, max(max_start, 0), num_clips)).astype(np.int64)


@dataclass(frozen=True)
class RandomClipSampler(_ClipGeometry):
    """One clip at a uniformly random start (training)."""

    num_clips: int = 1

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray:
        _check_length(video_len)
        generator = as_numpy_rng(rng)
        max_start = video_len - self.span(fps)
        starts = generator.integers(0, max(max_start, 0) + 1, size=self.num_clips)
        return self.clips(starts, video_len, fps)


@dataclass(frozen=True)
class UniformClipSampler(_ClipGeometry):
    """Deterministic clips (evaluation); ``rng`` is ignored.

    ``mode="center"``: ``num_clips`` clips evenly spaced over the video (one clip: the centre clip).
    ``mode="frames"``: one clip of ``num_frames`` frames evenly spread over the whole video, whatever its
    length (TSN-style segment sampling; ``stride`` is not used).
    """

    num_clips: int = 1
    mode: Literal["center", "frames"] = "center"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("center", "frames"):
            raise UsageError(f"mode must be 'center' or 'frames', got {self.mode!r}")
        if self.mode == "frames" and self.num_clips != 1:
            raise UsageError("mode='frames' draws one clip over the whole video; set num_clips=1")

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray:
        _check_length(video_len)
        if self.mode == "frames":
            # centre of each of num_frames equal segments
            edges = np.linspace(0, video_len, self.num_frames + 1)
            centres = np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64)
            return np.minimum(centres, video_len - 1)[None, :]
        starts = _evenly_spaced_starts(self.num_clips, video_len - self.span(fps))
        return self.clips(starts, video_len, fps)


@dataclass(frozen=True)
class MultiViewTestSampler(_ClipGeometry):
    """The "N clips x 3 crops" test protocol: ``num_clips`` evenly spaced temporal clips.

    Returns ``(num_clips, num_frames)``; the ``num_crops`` spatial crops of each clip come from the transform
    (e.g. ``ThreeCrop``). Views are ordered clip-major: view ``v`` is clip ``v // num_crops``, crop
    ``v % num_crops``; :meth:`per_view` expands the temporal indices to one row per view in that order.
    """

    num_clips: int = 10
    num_crops: int = 3

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray:
        _check_length(video_len)
        starts = _evenly_spaced_starts(self.num_clips, video_len - self.span(fps))
        return self.clips(starts, video_len, fps)

    def per_view(self, clips: np.ndarray) -> np.ndarray:
        """``(num_clips, num_frames)`` -> ``(num_clips * num_crops, num_frames)``, clip-major."""
        return np.repeat(clips, self.num_crops, axis=0)


@dataclass(frozen=True)
class MultiClipViewsSampler(_ClipGeometry):
    """``num_views`` clips for multi-view self-supervision.

    ``same_clip=True``: every view is the same clip (views differ only by augmentation, SimCLR-style).
    Otherwise the first clip starts uniformly at random and every other clip starts uniformly within
    ``max_distance`` seconds of it (start to start; the whole video when ``None``), as in CVRL / BraVe /
    ρBYOL-style temporally distant positives. Rows are in draw order (row 0 is the anchor clip).
    """

    num_views: int = 2
    same_clip: bool = False
    max_distance: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_views < 1:
            raise UsageError(f"num_views must be >= 1, got {self.num_views}")
        if self.max_distance is not None and self.max_distance < 0:
            raise UsageError(f"max_distance must be >= 0 seconds, got {self.max_distance}")

    @property
    def num_clips(self) -> int:
        return self.num_views

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray:
        _check_length(video_len)
        generator = as_numpy_rng(rng)
        max_start = max(video_len - self.span(fps), 0)
        anchor = int(generator.integers(0, max_start + 1))
        if self.same_clip:
            starts = np.full(self.num_views, anchor, dtype=np.int64)
        else:
            low, high = 0, max_start
            if self.max_distance is not None:
                if fps <= 0:
                    raise ValueError(f"max_distance needs the video's fps, got fps={fps}")
                reach = int(np.floor(self.max_distance * fps))
                low, high = max(anchor - reach, 0), min(anchor + reach, max_start)
            others = generator.integers(low, high + 1, size=self.num_views - 1)
            starts = np.concatenate([[anchor], others]).astype(np.int64)
        return self.clips(starts, video_len, fps)


def clip_span(sampler: ClipSampler, fps: float) -> int:
    """Frames one clip of ``sampler`` covers at ``fps`` (its ``num_frames`` when it declares no ``span``)."""
    span = getattr(sampler, "span", None)
    return int(span(fps)) if callable(span) else int(sampler.num_frames)


_SAMPLERS = {
    "random": RandomClipSampler,
    "uniform": UniformClipSampler,
    "multiview_test": MultiViewTestSampler,
    "multiclip": MultiClipViewsSampler,
}


def build_sampler(name: str, **kwargs) -> ClipSampler:
    """A sampler by name: ``random``, ``uniform``, ``multiview_test``, ``multiclip``."""
    if name not in _SAMPLERS:
        raise KeyError(f"unknown clip sampler {name!r}; known: {sorted(_SAMPLERS)}")
    return _SAMPLERS[name](**kwargs)
