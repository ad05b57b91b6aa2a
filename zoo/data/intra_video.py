"""Clips of one video for intra-video contrast: anchor, its key, and a hard negative at another time.

Background Erasing and DSM (Wang et al., CVPR 2021 / AAAI 2021) contrast a clip with the *same*
segment augmented independently (the key) and with a clip of the same video at another time (the
negative: same scene, other motion). :class:`IntraVideoTripletSampler` returns their frame indices
as three rows; the dataset transforms each row independently, so the batch holds ``video_views``
(B, 3, C, T, H, W) = (anchor, key, negative).

A video too short to hold two clips ``min_gap`` frames apart cannot give the negative: the sampler
raises :class:`ClipUnavailableError`, a :class:`~zoo.data.video.VideoDecodeError`, so the dataset
skips the video and counts it with the reason (the released code pads such a clip with zeros, which
still enters the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.data.samplers import Rng, _ClipGeometry, as_numpy_rng
from zoo.data.video import VideoDecodeError
from zoo.errors import UsageError

__all__ = ["ClipUnavailableError", "IntraVideoTripletSampler"]


class ClipUnavailableError(VideoDecodeError):
    """A video cannot give the clips a sampler must draw (too short): skipped and counted, never zeros."""

    def __init__(self, reason: str, path: str = ""):
        self.path = path
        RuntimeError.__init__(self, f"{path!r}: {reason}" if path else reason)


@dataclass(frozen=True)
class IntraVideoTripletSampler(_ClipGeometry):
    """Frame indices (3, T): the anchor clip, the same clip again (the key), and the negative clip.

    The anchor starts uniformly among the starts that leave room for a negative; the negative starts
    uniformly among the starts at least ``min_gap`` frames from the anchor's (the BE/DSM code: 2,
    shifting a too-close start by a third of the video, wrapping around its end; zoo draws directly
    among the far-enough starts and never wraps).

    Args:
        min_gap: the fewest frames between the anchor's and the negative's first frames.
    """

    min_gap: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_gap < 1:
            raise UsageError(f"negative_min_gap must be >= 1 frame, got {self.min_gap}")

    @property
    def num_clips(self) -> int:
        return 3

    def __call__(self, video_len: int, fps: float, rng: Rng = None) -> np.ndarray:
        generator = as_numpy_rng(rng)
        span = self.span(fps)
        max_start = video_len - span
        starts = np.arange(max(max_start, -1) + 1)
        has_negative = (starts + self.min_gap <= max_start) | (starts >= self.min_gap)
        if not has_negative.any():
            raise ClipUnavailableError(
                f"{video_len} frames cannot hold a clip of {span} frames and a negative clip starting "
                f"{self.min_gap} frames away (needs {span + self.min_gap})"
            )
        anchor = int(generator.choice(starts[has_negative]))
        negatives = starts[np.abs(starts - anchor) >= self.min_gap]
        negative = int(generator.choice(negatives))
        return self.clips(np.array([anchor, anchor, negative]), video_len, fps)
