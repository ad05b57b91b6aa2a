"""Audio: read a time window of a file's audio track (PyAV, resampled) and turn it into a log-mel spectrogram."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch

from zoo.data.video import VideoDecodeError

_PREROLL = 0.1  # seconds decoded before the window and dropped


class AudioMissingError(RuntimeError):
    """The file has no audio stream; the message names the path."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        super().__init__(f"no audio stream in {self.path!r}")


def _decode_span(
    path: Path, sample_rate: int, start: float, end: float | None, mono: bool
) -> tuple[np.ndarray, float]:
    """Decode the audio around ``[start, end)`` resampled to ``sample_rate``.

    Returns ``(waveform (C, N) float32, t0)`` where sample ``k`` lies at time ``t0 + k / sample_rate`` s.
    """
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoDecodeError(path, "no such file" if not path.is_file() else "empty file")
    try:
        container = av.open(str(path), mode="r")
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
    waveform, t0 = _decode_span(Path(path), sample_rate, start, end, mono)
    first = max(round((start - t0) * sample_rate), 0)
    last = waveform.shape[1] if end is None else max(round((end - t0) * sample_rate), first)
    return torch.from_numpy(np.ascontiguousarray(waveform[:, first:last]))


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
    waveform = torch.zeros(1, num_samples)
    present = torch.zeros(num_samples, dtype=torch.bool)
    try:
        audio, t0 = _decode_span(Path(path), sample_rate, max(clip_start, 0.0), clip_end, mono=True)
    except AudioMissingError:
        if on_missing == "raise":
            raise
        return waveform, present
    offset = round((t0 - clip_start) * sample_rate)  # where audio sample 0 lands in the window
    src_first, dst_first = max(-offset, 0), max(offset, 0)
    count = max(min(audio.shape[1] - src_first, num_samples - dst_first), 0)
    waveform[:, dst_first : dst_first + count] = torch.from_numpy(audio[:, src_first : src_first + count])
    present[dst_first : dst_first + count] = True
    return waveform, present


def _hz_to_mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    """HTK mel scale."""
    if isinstance(freq, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters on the HTK mel scale, unnormalised (peak 1), as ``(n_freqs, n_mels)``."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,) each
    rising = (freqs[:, None] - lower) / (centre - lower)  # (n_freqs, n_mels)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.minimum(rising, falling).clamp_min(0.0).float()


def log_mel(
    waveform: torch.Tensor,
    sample_rate: int,
    n_fft: int = 400,
    hop: int = 160,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: float | None = None,
    floor: float = 1e-6,
) -> torch.Tensor:
    """Log-mel power spectrogram ``(1, n_mels, frames)`` of a ``(channels, samples)`` or ``(samples,)`` waveform.

    Channels are averaged. Periodic Hann window of ``n_fft`` samples, hop ``hop``, frames centred (zero padding
    of ``n_fft // 2`` at both ends, so ``frames = 1 + samples // hop``); power ``|STFT|^2`` through HTK mel
    filters (:func:`mel_filterbank`); ``log(max(mel, floor))``. Defaults: 25 ms windows, 10 ms hop at 16 kHz.
    """
    signal = waveform.float()
    if signal.ndim == 2:
        signal = signal.mean(dim=0)
    elif signal.ndim != 1:
        raise ValueError(f"waveform must be (channels, samples) or (samples,); got {tuple(waveform.shape)}")
    window = torch.hann_window(n_fft, device=signal.device)
    spectrum = torch.stft(
        signal, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True
    )  # (n_fft // 2 + 1, frames)
    power = spectrum.real**2 + spectrum.imag**2
    filters = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max or sample_rate / 2)
    mel = filters.to(signal.device).T @ power  # (n_mels, frames)
    return torch.log(mel.clamp_min(floor))[None]
