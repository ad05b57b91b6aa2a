"""Per-view audio: windows aligned to each clip's time, cut from one read of the file, spectrogram per view."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import generate_synth, tiny_synth

from zoo.data.audio import AudioMissingError, audio_views, clip_windows, read_audio
from zoo.data.audio_transforms import AudioAugment, AudioFrontEnd, AudioWindow, audio_features, audio_preset
from zoo.data.encode import index_pattern_frames, write_video

RATE = 16000
LOG_MEL = AudioFrontEnd(kind="log_mel", sample_rate=RATE, n_filters=40)  # hop 160: 100 frames a second
SILENCE = float(np.log(1e-6))


def _clips(first_frames, length):
    return np.stack([np.arange(f, f + length) for f in first_frames])  # (K, T)


def _sounding(spec: torch.Tensor) -> torch.Tensor:
    """Which frames of a (1, F, S) log-mel carry sound."""
    return spec[0].max(dim=0).values > SILENCE + 5


@pytest.fixture(scope="module")
def burst_video(tmp_path_factory) -> Path:
    """3 s at 25 fps; the mono 16 kHz track is a 440 Hz tone during [1, 2) s and silent elsewhere."""
    t = np.arange(3 * RATE) / RATE
    tone = np.where((t >= 1.0) & (t < 2.0), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    path = tmp_path_factory.mktemp("burst") / "burst.mp4"
    return write_video(path, index_pattern_frames(75, 32, 32), 25.0, audio=tone[None], sample_rate=RATE)


@pytest.fixture(scope="module")
def synth_video(tmp_path_factory) -> Path:
    """One SynthMotion clip with its sound track: 32 frames at 16 fps (2 s), a tone plus event clicks."""
    synth = tiny_synth(size=16, num_frames=32, audio=True)
    synth.update(num_classes=1, train_per_class=1, val_per_class=0, test_per_class=0)
    root = generate_synth(tmp_path_factory.mktemp("synth"), synth)
    with open(root / "train.csv") as f:
        return root / next(csv.DictReader(f))["path"]


def test_clip_windows_alignment_and_shift():
    clips = _clips([0, 30, 90], 30)  # 30 fps: clips start at 0, 1 and 3 s, 1 s long
    start = clip_windows(clips, 30.0, AudioWindow(seconds=1.0, align="start"))
    assert start.dtype == torch.float64 and torch.allclose(
        start, torch.tensor([[0.0, 1], [1, 2], [3, 4]]).double()
    )
    centre = clip_windows(clips, 30.0, AudioWindow(seconds=2.0, align="centre"))
    assert torch.allclose(centre, torch.tensor([[-0.5, 1.5], [0.5, 2.5], [2.5, 4.5]]).double())
    shifted = clip_windows(clips, 30.0, AudioWindow(seconds=1.0, fit="shift"), track_seconds=3.5)
    assert torch.allclose(shifted, torch.tensor([[0.0, 1], [1, 2], [2.5, 3.5]]).double())  # moved back to end
    padded = clip_windows(clips, 30.0, AudioWindow(seconds=1.0, fit="pad"), track_seconds=3.5)
    assert torch.allclose(padded, start)
    moved = clip_windows(clips, 30.0, AudioWindow(seconds=1.0), offsets=torch.tensor([0.25, -0.5, 0.0]))
    assert torch.allclose(moved[:, 0], torch.tensor([0.25, 0.5, 3.0]).double())
    reversed_clip = clip_windows(_clips([0], 30)[:, ::-1].copy(), 30.0, AudioWindow())  # GDT's reversed view
    assert torch.allclose(reversed_clip, start[:1])


def test_views_match_slices_of_the_synthmotion_track(synth_video):
    """Each view's spectrogram is that of the track's samples at its clip's time, cut from one read."""
    full = read_audio(synth_video, RATE)  # (1, N)
    assert full.abs().max() > 0.1  # the track has sound
    clips = _clips([0, 8, 16, 4], 8)  # 16 fps: 0, 0.5, 1.0 and 0.25 s
    audio, mask = audio_views(synth_video, clips, 16.0, LOG_MEL, AudioWindow(seconds=1.0, align="start"))
    assert audio.shape == (4, 1, 40, 101) and mask.shape == (4, 101) and mask.dtype == torch.bool
    for view, first in enumerate([0, 8, 16, 4]):
        begin = first * RATE // 16
        expected = audio_features(full[:, begin : begin + RATE], LOG_MEL)
        assert torch.allclose(audio[view], expected, atol=1e-5)
        assert mask[view].all()
    assert not torch.allclose(audio[0], audio[1], atol=1e-2)  # the views really differ


def test_window_past_the_end_is_shifted_or_padded(synth_video):
    full = read_audio(synth_video, RATE)
    track_end = full.shape[1] / RATE
    clips = _clips([24], 8)  # 1.5 s: a 1 s window would end at 2.5 s, past the 2 s track
    shifted, mask = audio_views(synth_video, clips, 16.0, LOG_MEL, AudioWindow(seconds=1.0, fit="shift"))
    assert mask.all()
    expected = audio_features(full[:, full.shape[1] - RATE :], LOG_MEL)  # the track's last second
    assert torch.allclose(shifted[0], expected, atol=1e-3)
    padded, mask = audio_views(synth_video, clips, 16.0, LOG_MEL, AudioWindow(seconds=1.0, fit="pad"))
    inside = round((track_end - 1.5) * 100)  # frames of the window that lie inside the track
    assert mask[0, : inside - 1].all() and not mask[0, inside + 1 :].any()
    assert torch.all(padded[0, 0, :, inside + 3 :] == SILENCE)


def test_views_follow_their_clips_in_time(burst_video):
    """Tone during [1, 2) s: where it starts and stops inside each view's spectrogram tells the window's time."""
    clips = _clips([10, 40, 40], 10)  # 25 fps: clips at 0.4 s, 1.6 s and 1.6 s (span [1.6, 2.0))
    start, _ = audio_views(burst_video, clips[:2], 25.0, LOG_MEL, AudioWindow(seconds=1.0, align="start"))
    onset = int(_sounding(start[0]).float().argmax())  # window [0.4, 1.4): the tone begins at 0.6 s
    assert abs(onset - 60) <= 3 and _sounding(start[0])[onset:].all()
    sounding = _sounding(start[1])  # window [1.6, 2.6): the tone ends at 0.4 s
    assert sounding[:38].all() and not sounding[43:].any()
    centre, mask = audio_views(
        burst_video, clips[2:], 25.0, LOG_MEL, AudioWindow(seconds=1.0, align="centre")
    )
    sounding = _sounding(centre[0])  # window [1.3, 2.3): the tone ends at 0.7 s
    assert sounding[:68].all() and not sounding[73:].any() and mask.all()


def test_window_before_the_track_start_is_masked(burst_video):
    audio, mask = audio_views(
        burst_video, _clips([0], 10), 25.0, LOG_MEL, AudioWindow(seconds=1.0, align="centre")
    )
    # window [-0.3, 0.7): the first 0.3 s lie before the track
    assert not mask[0, :29].any() and mask[0, 31:].all()
    assert torch.all(audio[0, 0, :, :28] == SILENCE)


def test_augmented_views_depend_on_the_generator_only(synth_video):
    front_end, window, augment = audio_preset("gdt")
    augment = AudioAugment(**{**augment.__dict__, "time_jitter": 0.25})
    clips = _clips([8, 12], 8)
    one, _ = audio_views(
        synth_video, clips, 16.0, front_end, window, augment, torch.Generator().manual_seed(0)
    )
    torch.manual_seed(5)
    np.random.seed(5)
    two, _ = audio_views(
        synth_video, clips, 16.0, front_end, window, augment, torch.Generator().manual_seed(0)
    )
    other, _ = audio_views(
        synth_video, clips, 16.0, front_end, window, augment, torch.Generator().manual_seed(1)
    )
    plain, _ = audio_views(synth_video, clips, 16.0, front_end, window)
    assert one.shape == (2, 1, 40, 99)
    assert torch.equal(one, two) and not torch.equal(one, other) and not torch.equal(one, plain)


def test_missing_audio_gives_masked_silence_or_an_error(tmp_path):
    silent = write_video(tmp_path / "silent.mp4", index_pattern_frames(20, 32, 32), 25.0)
    clips = _clips([0, 5], 10)
    for path in (silent, None):
        audio, mask = audio_views(path, clips, 25.0, LOG_MEL, AudioWindow(seconds=0.5))
        assert audio.shape == (2, 1, 40, 51) and not mask.any()
        assert torch.equal(audio[0], audio_features(torch.zeros(1, RATE // 2), LOG_MEL))
    with pytest.raises(AudioMissingError, match=str(silent)):
        audio_views(silent, clips, 25.0, LOG_MEL, on_missing="raise")
    with pytest.raises(AudioMissingError, match="no media file"):
        audio_views(None, clips, 25.0, LOG_MEL, on_missing="raise")
