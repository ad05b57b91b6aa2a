"""Decode + preprocess a video, or its sound track, the way a checkpoint expects it (what
``zoo.transform_for`` returns)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.data.audio import read_audio
from zoo.data.audio_transforms import (
    AudioConfigError,
    AudioFrontEnd,
    AudioWindow,
    audio_features,
    audio_preset,
)
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


@dataclass(frozen=True)
class AudioPreprocessor:
    """A media file's sound track (or a waveform) -> the spectrogram ``(1, F, S)`` an audio tower reads.

    Built from a catalog tower's audio ``preprocess`` by :meth:`from_spec`.

    Args:
        front_end: the features, and the sample rate the audio is resampled to.
        seconds: the length of the window read (None: to the end of the track); a track that ends
            sooner is padded with silence, so windows of several files stack.
    """

    front_end: AudioFrontEnd
    seconds: float | None = 1.0

    @classmethod
    def from_spec(
        cls, preset: str | None = None, seconds: float | None = None, **fields: Any
    ) -> AudioPreprocessor:
        """A method's pipeline (``preset``, see :func:`~zoo.data.audio_transforms.audio_preset`) or the
        defaults, with ``fields`` of :class:`~zoo.data.audio_transforms.AudioFrontEnd` over its front-end
        and ``seconds`` over its window.

        Args:
            preset: ``"gdt"``, ``"stica"``, ``"selavi"`` or None.
            seconds: the window length (None: the preset's).
            **fields: front-end settings.
        """
        front_end, window = (
            (audio_preset(preset)[:2]) if preset is not None else (AudioFrontEnd(), AudioWindow())
        )
        known = [f.name for f in dataclasses.fields(AudioFrontEnd)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise AudioConfigError(
                f"unknown AudioFrontEnd field(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return cls(dataclasses.replace(front_end, **fields), window.seconds if seconds is None else seconds)

    def __call__(self, audio: str | os.PathLike | torch.Tensor, start: float = 0.0) -> torch.Tensor:
        """The spectrogram ``(1, F, S)`` of the window that begins ``start`` seconds in.

        Args:
            audio: a media file, or a waveform ``(channels, samples)`` at ``front_end.sample_rate``.
            start: where the window begins, seconds.
        """
        rate = self.front_end.sample_rate
        length = None if self.seconds is None else round(self.seconds * rate)
        if isinstance(audio, torch.Tensor):
            first = round(start * rate)
            waveform = audio[..., first : None if length is None else first + length]
        else:
            end = None if self.seconds is None else start + self.seconds
            waveform = read_audio(audio, rate, start, end)  # (channels, samples)
        if length is not None:
            waveform = torch.nn.functional.pad(waveform, (0, length - waveform.shape[-1]))
        return audio_features(waveform, self.front_end)  # (1, F, S)
