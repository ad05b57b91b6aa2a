"""Audio reading (resampling, time alignment, missing tracks) and the log-mel spectrogram."""

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.audio import AudioMissingError, clip_audio_window, log_mel, mel_filterbank, read_audio
from zoo.data.encode import index_pattern_frames, write_video
from zoo.data.video import VideoDecodeError

SOURCE_RATE = 44100
BURST = (1.0, 2.0)  # seconds during which the tone sounds; silence elsewhere in the 3 s track


def _onset(signal: torch.Tensor, sample_rate: int) -> float:
    return float(np.argmax(signal.abs().numpy() > 0.05)) / sample_rate


@pytest.fixture(scope="module")
def burst_video(tmp_path_factory) -> Path:
    """A 3 s video whose stereo 44.1 kHz track is a 440 Hz tone in [1, 2) s, right = 0.5 * left."""
    t = np.arange(3 * SOURCE_RATE) / SOURCE_RATE
    left = np.where((t >= BURST[0]) & (t < BURST[1]), 0.6 * np.sin(2 * np.pi * 440 * t), 0.0)
    audio = np.stack([left, 0.5 * left]).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "burst.mp4"
    return write_video(path, index_pattern_frames(75, 32, 32), 25.0, audio=audio, sample_rate=SOURCE_RATE)


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("noaudio") / "v.mp4", index_pattern_frames(10, 32, 32), 25.0)


def test_read_audio_resamples_and_keeps_time(burst_video):
    stereo = read_audio(burst_video, 16000, mono=False)
    assert stereo.dtype == torch.float32 and stereo.shape[0] == 2
    assert stereo.shape[1] == pytest.approx(3 * 16000, abs=1100)  # AAC pads to whole 1024-sample frames
    assert _onset(stereo[0], 16000) == pytest.approx(BURST[0], abs=2e-3)
    burst = stereo[0, 16000 + 800 : 2 * 16000 - 800].numpy()
    peak_hz = np.argmax(np.abs(np.fft.rfft(burst))) * 16000 / len(burst)
    assert peak_hz == pytest.approx(440, abs=3)
    assert torch.allclose(stereo[1], 0.5 * stereo[0], atol=0.02)
    mono = read_audio(burst_video, 16000)
    assert mono.shape == (1, stereo.shape[1])
    assert torch.allclose(mono[0], stereo.mean(0), atol=1e-6)


def test_read_audio_window(burst_video):
    window = read_audio(burst_video, 16000, start=0.7, end=1.3, mono=False)
    assert window.shape == (2, 9600)
    assert _onset(window[0], 16000) == pytest.approx(0.3, abs=2e-3)
    full = read_audio(burst_video, 16000, mono=False)
    assert torch.allclose(window, full[:, 11200:20800], atol=5e-3)
    # inside the burst: a seek lands on an AAC frame boundary, so the resampling grid may differ from the
    # full read's by under half an output sample; a 440 Hz tone of amplitude 0.6 then moves by at most
    # 0.6 * 2 * pi * 440 / 16000 / 2 = 0.052
    window = read_audio(burst_video, 16000, start=1.25, end=1.85, mono=False)
    reference = full[:, 20000:29600]
    assert (window - reference).abs().max() < 0.06
    lags = range(-4, 5)
    correlation = [float(window[0, 8:-8] @ reference[0, 8 + lag : 9600 - 8 + lag]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0


def test_clip_window_pads_outside_the_track(burst_video):
    waveform, present = clip_audio_window(burst_video, -0.5, 1.5, 16000)
    assert waveform.shape == (1, 32000) and present.shape == (32000,) and present.dtype == torch.bool
    assert not present[:8000].any() and present[8000:].all()
    assert waveform[0, :8000].abs().max() == 0
    assert _onset(waveform[0], 16000) == pytest.approx(1.5, abs=2e-3)
    waveform, present = clip_audio_window(burst_video, 2.5, 3.5, 16000)
    assert waveform.shape == (1, 16000)
    assert present[:7000].all() and not present[-4000:].any()  # the track ends a little past 3 s


def test_missing_audio(silent_video):
    waveform, present = clip_audio_window(silent_video, 0.0, 0.4, 16000)
    assert waveform.shape == (1, 6400) and not present.any() and waveform.abs().sum() == 0
    with pytest.raises(AudioMissingError, match=str(silent_video)):
        clip_audio_window(silent_video, 0.0, 0.4, 16000, on_missing="raise")
    with pytest.raises(AudioMissingError):
        read_audio(silent_video)


def test_unreadable_file_names_path(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x01 not media" * 100)
    with pytest.raises(VideoDecodeError, match=str(path)):
        read_audio(path)


def _reference_log_mel(signal: np.ndarray, rate: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """Straightforward numpy log-mel: explicit framing, rfft, triangles built one by one with np.interp."""
    padded = np.pad(signal.astype(np.float64), n_fft // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    num_frames = 1 + len(signal) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(num_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, n_fft // 2 + 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    top_mel = 2595 * np.log10(1 + (rate / 2) / 700)
    edges_hz = [700 * (10 ** (m / 2595) - 1) for m in np.linspace(0, top_mel, n_mels + 2)]
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        left, centre, right = edges_hz[m : m + 3]
        bank[m] = np.interp(freqs, [left, centre, right], [0.0, 1.0, 0.0], left=0.0, right=0.0)
    return np.log(np.maximum(bank @ power.T, 1e-6))


@pytest.mark.parity
def test_log_mel_matches_numpy_reference():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(8000).astype(np.float32) * 0.1
    ours = log_mel(torch.from_numpy(signal)[None], 16000, n_fft=400, hop=160, n_mels=40)
    assert ours.shape == (1, 40, 1 + 8000 // 160)
    reference = _reference_log_mel(signal, 16000, 400, 160, 40)
    assert np.abs(ours[0].numpy() - reference).max() < 1e-3


def test_log_mel_tone_lands_in_its_band():
    rate, n_mels = 16000, 80
    t = torch.arange(rate) / rate
    spec = log_mel(torch.sin(2 * np.pi * 1000 * t)[None], rate, n_mels=n_mels)
    bank = mel_filterbank(201, n_mels, rate, 0.0, rate / 2)
    band_of_1khz = int(bank[round(1000 / (rate / 2) * 200)].argmax())
    assert int(spec[0, :, 10:-10].mean(-1).argmax()) == band_of_1khz
    silence = log_mel(torch.zeros(1, 1600), rate)
    assert torch.allclose(silence, torch.full_like(silence, np.log(1e-6)))  # the floor
