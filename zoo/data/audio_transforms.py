"""Audio front-ends and augmentations: waveform -> spectrogram ``(1, F, S)``, pure torch.

Three kinds of features, chosen by :class:`AudioFrontEnd` (a plain dataclass, so a YAML config can spell it):

- ``log_mel``: periodic Hann window, centred frames, ``|STFT|^2`` through HTK mel triangles,
  ``log(max(mel, floor))``.
- ``log_filterbank``: ``python_speech_features.logfbank`` exactly, as GDT, STiCA and SeLaVi compute it:
  pre-emphasis 0.97, rectangular frames that start at sample 0 (the last one zero-padded), power
  ``|rfft(frame, n_fft)|^2 / n_fft``, mel triangles on whole FFT bins, exact zeros replaced by ``floor``
  (float64 eps), natural log.
- ``spectrogram``: the log power STFT itself (``n_fft // 2 + 1`` rows).

:class:`AudioAugment` holds the training-time randomness the originals use: volume jitter on the waveform,
SpecAugment frequency and time masks (Park et al., 2019) on the spectrogram, and a random shift of the audio
window. Every draw comes from the ``torch.Generator`` passed in, so a sample is a function of its generator.
:func:`audio_preset` gives the settings of GDT, STiCA and SeLaVi.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from zoo.errors import UsageError

__all__ = [
    "AudioAugment",
    "AudioConfigError",
    "AudioFrontEnd",
    "AudioWindow",
    "audio_features",
    "audio_preset",
    "filterbank_bins",
    "frame_centres",
    "log_filterbank",
    "log_mel",
    "log_spectrogram",
    "mel_filterbank",
    "num_frames",
    "spec_augment",
    "volume_jitter",
]

PCM16_SCALE = 32768.0  # float audio in [-1, 1) times this = 16-bit PCM units (ffmpeg's s16le)
FLOAT64_EPS = float(np.finfo(np.float64).eps)  # python_speech_features' replacement for zero energies


class AudioConfigError(UsageError):
    """An audio setting is out of range; the message names the field."""


def _check(owner: str, checks: dict[str, tuple[bool, str]]) -> None:
    for name, (ok, expected) in checks.items():
        if not ok:
            raise AudioConfigError(f"{owner}.{name} must be {expected}")


@dataclass(frozen=True)
class AudioFrontEnd:
    """How a waveform becomes a spectrogram ``(1, F, S)``.

    Args:
        kind: ``"log_mel"``, ``"log_filterbank"`` (python_speech_features' ``logfbank``) or ``"spectrogram"``.
        sample_rate: the rate the audio is resampled to before analysis, Hz.
        window: analysis window length, samples.
        hop: step between frames, samples.
        n_fft: FFT size (``>= window``; the window is zero-padded to it).
        n_filters: mel filters (rows of the output); ignored by ``"spectrogram"`` (``n_fft // 2 + 1`` rows).
        f_min: lowest filter edge, Hz.
        f_max: highest filter edge, Hz (None: ``sample_rate / 2``).
        preemphasis: coefficient of ``x[n] - a * x[n-1]`` (None: 0.97 for ``log_filterbank``, else 0).
        floor: smallest energy before the log (None: float64 eps for ``log_filterbank``, else 1e-6).
        pcm16: analyse the waveform in 16-bit PCM units, ``round(x * 32768)`` clipped, as the originals do
            when they read audio through ffmpeg as ``s16le``.
        normalize: ``"none"``, ``"fixed"`` (``(x - mean) / std``) or ``"per_sample"`` (each spectrogram to
            zero mean and unit variance).
        mean: the mean of ``normalize="fixed"``.
        std: the standard deviation of ``normalize="fixed"``.
    """

    kind: Literal["log_mel", "log_filterbank", "spectrogram"] = "log_mel"
    sample_rate: int = 16000
    window: int = 400
    hop: int = 160
    n_fft: int = 400
    n_filters: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    preemphasis: float | None = None
    floor: float | None = None
    pcm16: bool = False
    normalize: Literal["none", "fixed", "per_sample"] = "none"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        f_max = self.sample_rate / 2 if self.f_max is None else self.f_max
        _check(
            "AudioFrontEnd",
            {
                "kind": (
                    self.kind in ("log_mel", "log_filterbank", "spectrogram"),
                    f"'log_mel', 'log_filterbank' or 'spectrogram'; got {self.kind!r}",
                ),
                "sample_rate": (self.sample_rate > 0, f"positive; got {self.sample_rate}"),
                "window": (self.window > 0, f"positive; got {self.window}"),
                "hop": (self.hop > 0, f"positive; got {self.hop}"),
                "n_fft": (self.n_fft >= self.window, f">= window ({self.window}); got {self.n_fft}"),
                "n_filters": (self.n_filters > 0, f"positive; got {self.n_filters}"),
                "f_max": (
                    0 <= self.f_min < f_max <= self.sample_rate / 2,
                    f"in (f_min, sample_rate / 2] = ({self.f_min}, {self.sample_rate / 2}]; got {f_max}",
                ),
                "floor": (self.floor is None or self.floor > 0, f"positive; got {self.floor}"),
                "normalize": (
                    self.normalize in ("none", "fixed", "per_sample"),
                    f"'none', 'fixed' or 'per_sample'; got {self.normalize!r}",
                ),
                "std": (self.std > 0, f"positive; got {self.std}"),
            },
        )
        filterbank = self.kind == "log_filterbank"
        if self.preemphasis is None:
            object.__setattr__(self, "preemphasis", 0.97 if filterbank else 0.0)
        if self.floor is None:
            object.__setattr__(self, "floor", FLOAT64_EPS if filterbank else 1e-6)

    @property
    def num_rows(self) -> int:
        """F, the spectrogram's rows."""
        return self.n_fft // 2 + 1 if self.kind == "spectrogram" else self.n_filters


@dataclass(frozen=True)
class AudioWindow:
    """Where each view's audio lies relative to its clip.

    Args:
        seconds: window length (the same for every view, so spectrograms stack).
        align: ``"start"``: the window starts at the clip's first frame (GDT, STiCA, SeLaVi);
            ``"centre"``: it is centred on the clip.
        fit: ``"shift"``: a window that runs past the end of the track is moved back to end with it
            (as the originals do); ``"pad"``: it keeps its place and the missing part is zeros, masked.
    """

    seconds: float = 1.0
    align: Literal["start", "centre"] = "start"
    fit: Literal["shift", "pad"] = "shift"

    def __post_init__(self) -> None:
        _check(
            "AudioWindow",
            {
                "seconds": (self.seconds > 0, f"positive; got {self.seconds}"),
                "align": (self.align in ("start", "centre"), f"'start' or 'centre'; got {self.align!r}"),
                "fit": (self.fit in ("shift", "pad"), f"'shift' or 'pad'; got {self.fit!r}"),
            },
        )


@dataclass(frozen=True)
class AudioAugment:
    """Training-time audio randomness, drawn per view from the sample's generator.

    Args:
        volume_jitter: waveform gain range ``(low, high)``, drawn uniformly (None: off; originals: (0.9, 1.1)).
        freq_masks: number of SpecAugment frequency masks.
        freq_mask_param: F; each frequency mask is ``int(U(0, F))`` rows wide, i.e. 0 to F - 1, as GDT draws it.
        time_masks: number of SpecAugment time masks.
        time_mask_param: T; each time mask is 0 to T - 1 frames wide.
        mask_value: what masked cells are set to (after normalisation; GDT: 0).
        time_jitter: the window moves by ``U(-time_jitter, time_jitter)`` seconds (GDT's temporal jittering
            uses 0.5; 0: off).
    """

    volume_jitter: tuple[float, float] | None = None
    freq_masks: int = 0
    freq_mask_param: int = 0
    time_masks: int = 0
    time_mask_param: int = 0
    mask_value: float = 0.0
    time_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.volume_jitter is not None:
            object.__setattr__(self, "volume_jitter", tuple(float(g) for g in self.volume_jitter))
        gains = self.volume_jitter
        _check(
            "AudioAugment",
            {
                "volume_jitter": (
                    gains is None or (len(gains) == 2 and 0 < gains[0] <= gains[1]),
                    f"None or (low, high) with 0 < low <= high; got {gains}",
                ),
                "freq_masks": (self.freq_masks >= 0, f">= 0; got {self.freq_masks}"),
                "freq_mask_param": (
                    self.freq_mask_param >= (1 if self.freq_masks else 0),
                    f">= 1 when freq_masks > 0; got {self.freq_mask_param}",
                ),
                "time_masks": (self.time_masks >= 0, f">= 0; got {self.time_masks}"),
                "time_mask_param": (
                    self.time_mask_param >= (1 if self.time_masks else 0),
                    f">= 1 when time_masks > 0; got {self.time_mask_param}",
                ),
                "time_jitter": (self.time_jitter >= 0, f">= 0; got {self.time_jitter}"),
            },
        )


@dataclass(frozen=True)
class _Preset:
    front_end: AudioFrontEnd
    window: AudioWindow = field(default_factory=AudioWindow)
    augment: AudioAugment = field(default_factory=AudioAugment)


def _logfbank_24k(n_filters: int, **kwargs) -> AudioFrontEnd:
    """``logfbank(wav, 24000, winlen=0.02, winstep=0.01, nfilt=n_filters, nfft=1024)`` on int16 samples."""
    return AudioFrontEnd(
        kind="log_filterbank", sample_rate=24000, window=480, hop=240, n_fft=1024, n_filters=n_filters,
        pcm16=True, **kwargs,
    )  # fmt: skip


_PRESETS = {
    # GDT (scripts/pretrain_gdt_k400.sh): 40 filters, z-norm (x - 1.93) / 17.89, SpecAugment "medium"
    "gdt": _Preset(
        _logfbank_24k(40, normalize="fixed", mean=1.93, std=17.89),
        augment=AudioAugment(
            volume_jitter=(0.9, 1.1), freq_masks=1, freq_mask_param=3, time_masks=1, time_mask_param=6
        ),
    ),
    # STiCA (scripts/pretrain_stica.sh) and SeLaVi (scripts/master.sh): 257 filters, no z-norm, no SpecAugment
    "stica": _Preset(_logfbank_24k(257), augment=AudioAugment(volume_jitter=(0.9, 1.1))),
    "selavi": _Preset(_logfbank_24k(257), augment=AudioAugment(volume_jitter=(0.9, 1.1))),
}


def audio_preset(name: str) -> tuple[AudioFrontEnd, AudioWindow, AudioAugment]:
    """The original audio pipeline of a method: ``(front_end, window, augment)``.

    Args:
        name: ``"gdt"``, ``"stica"`` or ``"selavi"``.
    """
    if name not in _PRESETS:
        raise AudioConfigError(f"unknown audio preset {name!r}; known: {sorted(_PRESETS)}")
    preset = _PRESETS[name]
    return preset.front_end, preset.window, preset.augment


# ----------------------------------------------------------------------------------------------------------
# Filterbanks


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


@functools.lru_cache(maxsize=16)
def filterbank_bins(n_filters: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Mel triangles whose corners sit on whole FFT bins, as ``logfbank`` builds them: ``(n_filters, n_fft//2+1)``.

    Corner ``m`` is bin ``floor((n_fft + 1) * hz(m) / sample_rate)`` with ``hz(m)`` evenly spaced on the HTK
    mel scale; filter ``j`` rises from corner ``j`` (weight 0) to corner ``j + 1`` (weight 1) and falls to
    corner ``j + 2`` (excluded). With many filters neighbouring corners coincide: such filters are all zero.
    Float64.
    """
    mels = np.linspace(2595 * np.log10(1 + f_min / 700.0), 2595 * np.log10(1 + f_max / 700.0), n_filters + 2)
    corners = torch.from_numpy(np.floor((n_fft + 1) * (700 * (10 ** (mels / 2595.0) - 1)) / sample_rate))
    lower, centre, upper = corners[:-2, None], corners[1:-1, None], corners[2:, None]  # (n_filters, 1) each
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64)  # (n_freqs,)
    rising = torch.where((bins >= lower) & (bins < centre), (bins - lower) / (centre - lower), 0.0)
    falling = torch.where((bins >= centre) & (bins < upper), (upper - bins) / (upper - centre), 0.0)
    return rising + falling  # (n_filters, n_freqs); the two ranges are disjoint


# ----------------------------------------------------------------------------------------------------------
# Spectrograms


def _mono(waveform: torch.Tensor) -> torch.Tensor:
    if waveform.ndim == 2:
        return waveform.mean(dim=0)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be (channels, samples) or (samples,); got {tuple(waveform.shape)}")
    return waveform


def _centred_power(signal: torch.Tensor, n_fft: int, hop: int, window: int) -> torch.Tensor:
    """``|STFT|^2`` with a periodic Hann window of ``window`` samples centred in ``n_fft``: ``(n_fft//2+1, S)``."""
    spectrum = torch.stft(
        signal,
        n_fft,
        hop_length=hop,
        win_length=window,
        window=torch.hann_window(window, device=signal.device, dtype=signal.dtype),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spectrum.real**2 + spectrum.imag**2


def log_mel(
    waveform: torch.Tensor,
    sample_rate: int,
    n_fft: int = 400,
    hop: int = 160,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: float | None = None,
    floor: float = 1e-6,
    window: int | None = None,
) -> torch.Tensor:
    """Log-mel power spectrogram ``(1, n_mels, frames)`` of a ``(channels, samples)`` or ``(samples,)`` waveform.

    Channels are averaged. Periodic Hann window of ``window`` samples (default ``n_fft``) centred in ``n_fft``,
    hop ``hop``, frames centred (zero padding of ``n_fft // 2`` at both ends, so ``frames = 1 + samples // hop``);
    power ``|STFT|^2`` through HTK mel filters (:func:`mel_filterbank`); ``log(max(mel, floor))``. Defaults:
    25 ms windows, 10 ms hop at 16 kHz.
    """
    signal = _mono(waveform.float())
    power = _centred_power(signal, n_fft, hop, window or n_fft)  # (n_fft // 2 + 1, frames)
    filters = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max or sample_rate / 2)
    mel = filters.to(signal.device).T @ power  # (n_mels, frames)
    return torch.log(mel.clamp_min(floor))[None]


def log_spectrogram(
    waveform: torch.Tensor, n_fft: int = 400, hop: int = 160, floor: float = 1e-6, window: int | None = None
) -> torch.Tensor:
    """Log power STFT ``(1, n_fft // 2 + 1, frames)``: :func:`log_mel`'s framing without the mel filters."""
    power = _centred_power(_mono(waveform.float()), n_fft, hop, window or n_fft)
    return torch.log(power.clamp_min(floor))[None]


def log_filterbank(
    waveform: torch.Tensor,
    sample_rate: int,
    window: int = 480,
    hop: int = 240,
    n_fft: int = 1024,
    n_filters: int = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    preemphasis: float = 0.97,
    floor: float = FLOAT64_EPS,
) -> torch.Tensor:
    """``python_speech_features.logfbank`` in torch: ``(1, n_filters, frames)`` float32, computed in float64.

    Pre-emphasis ``y[0] = x[0], y[n] = x[n] - a x[n-1]``; rectangular frames of ``window`` samples every ``hop``
    from sample 0, ``frames = 1 + ceil((samples - window) / hop)`` (at least 1), the last one zero-padded;
    power ``|rfft(frame, n_fft)|^2 / n_fft``; filters of :func:`filterbank_bins`; energies that are exactly 0
    become ``floor``; natural log. Defaults: GDT's 20 ms / 10 ms at 24 kHz with 40 filters.
    """
    signal = _mono(waveform.to(torch.float64))
    signal = torch.cat([signal[:1], signal[1:] - preemphasis * signal[:-1]])
    frames = num_frames("log_filterbank", signal.shape[0], window, hop)
    padded = torch.nn.functional.pad(signal, (0, (frames - 1) * hop + window - signal.shape[0]))
    framed = padded.unfold(0, window, hop)  # (frames, window)
    power = torch.fft.rfft(framed, n=n_fft).abs() ** 2 / n_fft  # (frames, n_fft // 2 + 1)
    filters = filterbank_bins(n_filters, n_fft, sample_rate, f_min, f_max or sample_rate / 2)
    energies = power @ filters.to(power.device).T  # (frames, n_filters)
    energies = torch.where(energies == 0, floor, energies)
    return torch.log(energies).T[None].float()


def num_frames(kind: str, num_samples: int, window: int, hop: int) -> int:
    """S, the frames a front-end of ``kind`` makes of ``num_samples`` samples."""
    if kind == "log_filterbank":
        return 1 if num_samples <= window else 1 + math.ceil((num_samples - window) / hop)
    return 1 + num_samples // hop


def frame_centres(front_end: AudioFrontEnd, num_samples: int) -> torch.Tensor:
    """The sample at the centre of each frame ``(S,)`` int64, clamped into ``[0, num_samples)``."""
    frames = num_frames(front_end.kind, num_samples, front_end.window, front_end.hop)
    centres = torch.arange(frames) * front_end.hop  # centred frames: frame i is centred on sample i * hop
    if front_end.kind == "log_filterbank":
        centres = centres + front_end.window // 2
    return centres.clamp(0, max(num_samples - 1, 0))


# ----------------------------------------------------------------------------------------------------------
# Augmentations


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform in ``{0, ..., high - 1}``."""
    return int(torch.randint(high, (), generator=generator))


def volume_jitter(
    waveform: torch.Tensor, gains: tuple[float, float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """The waveform times a gain drawn uniformly from ``gains = (low, high)``."""
    return waveform * _uniform(gains[0], gains[1], generator)


def spec_augment(
    spec: torch.Tensor, augment: AudioAugment, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SpecAugment masks (Park et al., 2019, without time warping) on a copy of ``spec`` ``(..., F, S)``.

    First ``freq_masks`` bands of rows, then ``time_masks`` bands of frames, set to ``mask_value``. Each band is
    ``w`` wide with ``w`` uniform in ``{0, ..., param - 1}`` and starts uniformly in ``{0, ..., size - w}``, as
    GDT's ``spec_augment`` draws them.
    """
    out = spec.clone()
    bands = (
        (augment.freq_masks, augment.freq_mask_param, -2, "rows"),
        (augment.time_masks, augment.time_mask_param, -1, "frames"),
    )
    for count, param, dim, unit in bands:
        size = out.shape[dim]
        if count and param > size:
            raise AudioConfigError(
                f"SpecAugment mask parameter {param} exceeds the spectrogram's {size} {unit}"
            )
        for _ in range(count):
            width = _randint(param, generator)
            start = _randint(size - width + 1, generator)
            out.narrow(dim, start, width).fill_(augment.mask_value)
    return out


# ----------------------------------------------------------------------------------------------------------
# The pipeline


def audio_features(
    waveform: torch.Tensor,
    front_end: AudioFrontEnd,
    augment: AudioAugment | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One view's spectrogram ``(1, F, S)`` float32 from its waveform ``(channels, samples)`` or ``(samples,)``.

    In the originals' order: 16-bit PCM units (``pcm16``), volume jitter, features of ``front_end.kind``,
    normalisation, SpecAugment. ``waveform`` must already be at ``front_end.sample_rate``.

    Args:
        waveform: the view's audio, float in [-1, 1].
        front_end: the features.
        augment: training randomness (None: none).
        generator: the source of every random draw.
    """
    cfg = front_end
    signal = _mono(waveform)
    if cfg.pcm16:
        signal = torch.round(signal.to(torch.float64) * PCM16_SCALE).clamp(-PCM16_SCALE, PCM16_SCALE - 1)
    if augment is not None and augment.volume_jitter is not None:
        signal = volume_jitter(signal, augment.volume_jitter, generator)
    f_max = cfg.f_max or cfg.sample_rate / 2
    if cfg.preemphasis and cfg.kind != "log_filterbank":
        signal = torch.cat([signal[:1], signal[1:] - cfg.preemphasis * signal[:-1]])
    if cfg.kind == "log_filterbank":
        spec = log_filterbank(
            signal, cfg.sample_rate, cfg.window, cfg.hop, cfg.n_fft, cfg.n_filters, cfg.f_min, f_max,
            cfg.preemphasis, cfg.floor,
        )  # fmt: skip
    elif cfg.kind == "log_mel":
        spec = log_mel(
            signal,
            cfg.sample_rate,
            cfg.n_fft,
            cfg.hop,
            cfg.n_filters,
            cfg.f_min,
            f_max,
            cfg.floor,
            cfg.window,
        )
    else:
        spec = log_spectrogram(signal, cfg.n_fft, cfg.hop, cfg.floor, cfg.window)
    if cfg.normalize == "fixed":
        spec = (spec - cfg.mean) / cfg.std
    elif cfg.normalize == "per_sample":
        spec = (spec - spec.mean()) / spec.std(correction=0).clamp_min(1e-5)
    if augment is not None and (augment.freq_masks or augment.time_masks):
        spec = spec_augment(spec, augment, generator)
    return spec
