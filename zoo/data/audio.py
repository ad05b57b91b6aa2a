"""Audio: read a file's audio track (PyAV, resampled), cut windows aligned to clips, make spectrograms per view.

The front-ends and augmentations themselves live in :mod:`zoo.data.audio_transforms`.
"""

from __future__ import annotations

import os
from typing import Literal

import av
import numpy as np
import torch

from zoo.data.audio_transforms import (
    AudioAugment,
    AudioFrontEnd,
    AudioWindow,
    audio_features,
    frame_centres,
    log_mel,
    mel_filterbank,
)
from zoo.data.video import InMemoryVideo, VideoDecodeError, VideoSource, as_source

__all__ = [
    "AudioMissingError",
    "audio_views",
    "clip_audio_window",
    "clip_windows",
    "log_mel",
    "mel_filterbank",
    "read_audio",
]

_PREROLL = 0.1  # seconds decoded before the window and dropped


class AudioMissingError(RuntimeError):
    """The file has no audio stream (or the sample has no file); the message names the path."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else str(path)
        super().__init__(
            "no media file, so no audio" if path is None else f"no audio stream in {self.path!r}"
        )


def _decode_span(
    source: VideoSource | InMemoryVideo, sample_rate: int, start: float, end: float | None, mono: bool
) -> tuple[np.ndarray, float]:
    """Decode the audio around ``[start, end)`` of a file or of bytes in memory, resampled to ``sample_rate``.

    Returns ``(waveform (C, N) float32, t0)`` where sample ``k`` lies at time ``t0 + k / sample_rate`` s.
    """
    path = as_source(source)
    if isinstance(path, InMemoryVideo):
        if not path.data:
            raise VideoDecodeError(str(path), "empty file")
    elif not path.is_file() or path.stat().st_size == 0:
        raise VideoDecodeError(path, "no such file" if not path.is_file() else "empty file")
    try:
        container = av.open(path.open() if isinstance(path, InMemoryVideo) else str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(path, f"not a readable media file ({err})") from err
    with container:
        if not container.streams.audio:
            raise AudioMissingError(path)
        stream = container.streams.audio[0]
        chunks, t0 = [], None
        try:
            if start > _PREROLL:  # start decoding a little early: the first frames after a seek are not exact
                offset = int((start - _PREROLL) / stream.time_base)
                container.seek(offset, stream=stream, backward=True, any_frame=False)
            resampler = None
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise VideoDecodeError(path, "audio frames carry no timestamps")
                if t0 is None:
                    t0 = float(frame.pts * frame.time_base)
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=sample_rate)
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
                if end is not None and float(frame.pts * frame.time_base) > end + 0.05:
                    break
            if resampler is not None:
                chunks += [f.to_ndarray() for f in resampler.resample(None)]  # flush the filter's tail
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"audio decoding failed ({err})") from err
    if t0 is None:
        return np.zeros((1, 0), dtype=np.float32), start
    waveform = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)  # (C, N)
    if mono:
        waveform = waveform.mean(axis=0, keepdims=True)
    return waveform, t0


def read_audio(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    start: float | None = None,
    end: float | None = None,
    mono: bool = True,
) -> torch.Tensor:
    """The audio in ``[start, end)`` seconds (whole track by default) as float32 ``(channels, samples)``.

    Resampled with FFmpeg's resampler; ``mono`` averages the channels. Only samples that exist are returned
    (a window past the end of the track comes back shorter). Raises :class:`AudioMissingError` when the file
    has no audio stream and :class:`~zoo.data.video.VideoDecodeError` when it cannot be read.
    """
    start = 0.0 if start is None else max(float(start), 0.0)
    waveform, t0 = _decode_span(path, sample_rate, start, end, mono)
    first = max(round((start - t0) * sample_rate), 0)
    last = waveform.shape[1] if end is None else max(round((end - t0) * sample_rate), first)
    return torch.from_numpy(np.ascontiguousarray(waveform[:, first:last]))


def _cut(
    audio: np.ndarray, t0: float, start: float, num_samples: int, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_samples`` samples of ``audio`` ``(1, N)`` (sample 0 at ``t0`` s) from ``start`` s, zeros outside it.

    Returns ``(waveform (1, num_samples), present (num_samples,) bool)``.
    """
    waveform = torch.zeros(1, num_samples)
    present = torch.zeros(num_samples, dtype=torch.bool)
    offset = round((t0 - start) * sample_rate)  # where audio sample 0 lands in the window
    src_first, dst_first = max(-offset, 0), max(offset, 0)
    count = max(min(audio.shape[1] - src_first, num_samples - dst_first), 0)
    waveform[:, dst_first : dst_first + count] = torch.from_numpy(audio[:, src_first : src_first + count])
    present[dst_first : dst_first + count] = True
    return waveform, present


def clip_audio_window(
    path: str | os.PathLike,
    clip_start: float,
    clip_end: float,
    sample_rate: int = 16000,
    on_missing: Literal["zeros", "raise"] = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mono audio aligned with a video clip spanning ``[clip_start, clip_end)`` seconds.

    Returns ``(waveform (1, N), present (N,) bool)`` with ``N = round((clip_end - clip_start) * sample_rate)``:
    parts of the span outside the track (before 0, past its end) are zeros with ``present`` False. A file
    without audio gives all zeros and an all-False mask (``on_missing="zeros"``) or raises
    :class:`AudioMissingError` (``on_missing="raise"``).
    """
    if on_missing not in ("zeros", "raise"):
        raise ValueError(f"on_missing must be 'zeros' or 'raise'; got {on_missing!r}")
    num_samples = round((clip_end - clip_start) * sample_rate)
    try:
        audio, t0 = _decode_span(path, sample_rate, max(clip_start, 0.0), clip_end, mono=True)
    except AudioMissingError:
        if on_missing == "raise":
            raise
        return torch.zeros(1, num_samples), torch.zeros(num_samples, dtype=torch.bool)
    return _cut(audio, t0, clip_start, num_samples, sample_rate)


def clip_windows(
    clips: torch.Tensor | np.ndarray,
    fps: float,
    window: AudioWindow,
    track_seconds: float | None = None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each view's audio window ``(K, 2)`` float64 as ``(start, end)`` seconds, ``end - start = window.seconds``.

    ``align="start"`` starts the window at the clip's first frame (``first / fps``, as GDT's ``fr_sec``);
    ``"centre"`` centres it on the clip's span ``[first / fps, (last + 1) / fps)``. ``offsets`` (seconds, per
    view) then move it. With ``fit="shift"`` and a known ``track_seconds``, a window that ends past the track
    is moved back to end with it (it may then start before 0 when the track is shorter than the window).

    Args:
        clips: frame indices ``(K, T)`` of the K views.
        fps: frame rate the indices count in.
        window: length, alignment and fit.
        track_seconds: where the audio track ends (None: unknown, nothing is shifted).
        offsets: ``(K,)`` seconds added to each window (temporal jitter), or None.
    """
    frames = torch.as_tensor(np.asarray(clips), dtype=torch.float64)
    if frames.ndim != 2 or frames.shape[1] == 0:
        raise ValueError(f"clips must be (views, frames) frame indices; got shape {tuple(frames.shape)}")
    first, last = frames.min(dim=1).values, frames.max(dim=1).values  # (K,) each
    if window.align == "start":
        start = first / fps
    else:
        start = (first + last + 1) / (2 * fps) - window.seconds / 2
    if offsets is not None:
        start = start + offsets.to(torch.float64)
    if window.fit == "shift" and track_seconds is not None:
        start = torch.where(start + window.seconds > track_seconds, track_seconds - window.seconds, start)
    return torch.stack([start, start + window.seconds], dim=-1)


def audio_views(
    path: str | os.PathLike | None,
    clips: torch.Tensor | np.ndarray,
    fps: float,
    front_end: AudioFrontEnd,
    window: AudioWindow | None = None,
    augment: AudioAugment | None = None,
    generator: torch.Generator | None = None,
    on_missing: Literal["zeros", "raise"] = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A spectrogram per video view, each aligned to its clip, from one read of the file's audio.

    Returns ``(audio (K, 1, F, S) float32, mask (K, S) bool)``: ``mask`` is False on frames whose centre falls
    outside the sound track (before 0, past its end, or a file without audio). The file is decoded once, over
    the span that covers every window; each window goes through :func:`~zoo.data.audio_transforms.audio_features`
    with ``augment``, views in order, every draw (window jitter first, then each view's gain and masks) from
    ``generator``. A file without an audio stream, or ``path=None`` (a sample without a media file), gives the
    features of silence and an all-False mask (``on_missing="zeros"``) or raises :class:`AudioMissingError`.

    Args:
        path: the video file (None: no file).
        clips: frame indices ``(K, T)`` of the K views.
        fps: frame rate the indices count in.
        front_end: the features (and the sample rate the audio is resampled to).
        window: where each view's audio lies (None: :class:`~zoo.data.audio_transforms.AudioWindow` defaults).
        augment: training randomness (None: none).
        generator: the source of every random draw.
        on_missing: ``"zeros"`` or ``"raise"`` for a file without audio.
    """
    if on_missing not in ("zeros", "raise"):
        raise ValueError(f"on_missing must be 'zeros' or 'raise'; got {on_missing!r}")
    window = window or AudioWindow()
    rate = front_end.sample_rate
    num_samples = round(window.seconds * rate)
    offsets = None
    if augment is not None and augment.time_jitter > 0:
        jitter = augment.time_jitter
        offsets = (torch.rand(len(clips), generator=generator, dtype=torch.float64) * 2 - 1) * jitter
    windows = clip_windows(clips, fps, window, offsets=offsets)  # (K, 2)
    try:
        if path is None:
            raise AudioMissingError(None)
        first, last = max(float(windows[:, 0].min()), 0.0), float(windows[:, 1].max())
        audio, t0 = _decode_span(path, rate, first, last, mono=True)
        if window.fit == "shift":  # windows past the end of the track move back
            windows = clip_windows(clips, fps, window, t0 + audio.shape[1] / rate, offsets)
            moved_first = max(float(windows[:, 0].min()), 0.0)
            if moved_first < first:  # a window now starts before the span decoded
                audio, t0 = _decode_span(path, rate, moved_first, last, mono=True)
    except AudioMissingError:
        if on_missing == "raise":
            raise
        audio, t0 = np.zeros((1, 0), dtype=np.float32), 0.0
    features, masks = [], []
    for start, _ in windows.tolist():
        waveform, present = _cut(audio, t0, start, num_samples, rate)
        features.append(audio_features(waveform, front_end, augment, generator))  # (1, F, S)
        masks.append(present[frame_centres(front_end, num_samples)])  # (S,)
    return torch.stack(features), torch.stack(masks)
