"""Audio front-ends (log filterbank as GDT/STiCA/SeLaVi, log-mel, log spectrogram) and their augmentations."""

import math

import numpy as np
import pytest
import torch

from zoo.data.audio_transforms import (
    AudioAugment,
    AudioConfigError,
    AudioFrontEnd,
    AudioWindow,
    audio_features,
    audio_preset,
    filterbank_bins,
    log_filterbank,
    log_mel,
    log_spectrogram,
    spec_augment,
)
from zoo.errors import UsageError

RATE = 24000


def _test_signal(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A tone, its octave, noise and a stretch of digital silence, in [-1, 1)."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * rate)) / rate
    wave = (
        0.3 * np.sin(2 * np.pi * 440 * t)
        + 0.1 * np.sin(2 * np.pi * 880 * t)
        + 0.02 * rng.standard_normal(len(t))
    )
    wave[len(t) // 2 : len(t) // 2 + rate // 10] = 0.0
    return wave.astype(np.float32)


def _reference_logfbank(
    signal: np.ndarray, rate: int, winlen: float, winstep: float, nfilt: int, nfft: int
) -> np.ndarray:
    """The logfbank recipe written out plainly: a filter at a time, a frame at a time, numpy float64."""
    frame_len, frame_step = math.floor(winlen * rate + 0.5), math.floor(winstep * rate + 0.5)
    x = signal.astype(np.float64)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    count = 1 if len(x) <= frame_len else 1 + math.ceil((len(x) - frame_len) / frame_step)
    x = np.concatenate([x, np.zeros((count - 1) * frame_step + frame_len - len(x))])
    power = np.stack(
        [
            np.abs(np.fft.rfft(x[i * frame_step : i * frame_step + frame_len], nfft)) ** 2 / nfft
            for i in range(count)
        ]
    )  # (frames, nfft // 2 + 1)
    top = 2595 * np.log10(1 + (rate / 2) / 700.0)
    hz = [700 * (10 ** (m / 2595.0) - 1) for m in np.linspace(0, top, nfilt + 2)]
    corner = [math.floor((nfft + 1) * h / rate) for h in hz]
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(corner[j], corner[j + 1]):
            bank[j, i] = (i - corner[j]) / (corner[j + 1] - corner[j])
        for i in range(corner[j + 1], corner[j + 2]):
            bank[j, i] = (corner[j + 2] - i) / (corner[j + 2] - corner[j + 1])
    energies = power @ bank.T
    energies[energies == 0] = np.finfo(np.float64).eps
    return np.log(energies).T.astype(np.float32)  # (nfilt, frames)


@pytest.mark.parity
@pytest.mark.parametrize("n_filters", [40, 257])
def test_log_filterbank_matches_numpy_reference(n_filters):
    pcm = np.round(
        _test_signal().astype(np.float64) * 32768
    )  # the originals analyse 16-bit PCM values (int16)
    ours = log_filterbank(torch.from_numpy(pcm), RATE, 480, 240, 1024, n_filters)
    reference = _reference_logfbank(pcm, RATE, 0.02, 0.01, n_filters, 1024)
    assert ours.shape == (1, n_filters, 99) and ours.dtype == torch.float32
    assert np.abs(ours[0].numpy() - reference).max() < 1e-5
    front_end, _, _ = audio_preset("gdt" if n_filters == 40 else "stica")
    via_pipeline = audio_features(torch.from_numpy(pcm / 32768), front_end)
    expected = (reference - 1.93) / 17.89 if n_filters == 40 else reference
    assert np.abs(via_pipeline[0].numpy() - expected).max() < 1e-5


def test_257_filters_include_empty_ones_as_logfbank_makes_them():
    """At 24 kHz with a 1024-point FFT, 257 mel corners crowd the low bins: some filters have no weight."""
    bank = filterbank_bins(257, 1024, RATE, 0.0, RATE / 2)
    empty = bank.sum(dim=1) == 0
    assert 0 < int(empty.sum()) < 257
    spec = log_filterbank(
        torch.from_numpy(np.round(_test_signal().astype(np.float64) * 32768)), RATE, n_filters=257
    )
    assert torch.allclose(spec[0, empty], torch.tensor(math.log(np.finfo(np.float64).eps)))
    assert bank[~empty].max() == 1.0 and bank.min() == 0.0


@pytest.mark.parametrize(
    ("preset", "seconds", "shape"), [("gdt", 1, (1, 40, 99)), ("stica", 2, (1, 257, 199))]
)
def test_feature_shapes_of_the_originals(preset, seconds, shape):
    front_end, _, _ = audio_preset(preset)
    assert audio_features(torch.from_numpy(_test_signal(seconds)), front_end).shape == shape


def test_log_spectrogram_matches_numpy_reference():
    signal = _test_signal(0.25, 16000)
    ours = log_spectrogram(torch.from_numpy(signal), n_fft=512, hop=160, window=400)
    padded = np.pad(signal.astype(np.float64), 256)
    hann = np.pad(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400), 56)  # centred in the 512-point frame
    frames = np.stack([padded[i * 160 : i * 160 + 512] * hann for i in range(1 + len(signal) // 160)])
    reference = np.log(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 1e-6)).T
    assert ours.shape == (1, 257, 1 + len(signal) // 160)
    assert np.abs(ours[0].numpy() - reference).max() < 1e-3


def test_log_mel_front_end_is_log_mel():
    signal = torch.from_numpy(_test_signal(0.5, 16000))
    front_end = AudioFrontEnd(kind="log_mel", sample_rate=16000, n_filters=40)
    assert torch.equal(audio_features(signal, front_end), log_mel(signal, 16000, n_mels=40))


def test_normalisation():
    signal = torch.from_numpy(_test_signal())
    raw = audio_features(
        signal, AudioFrontEnd(kind="log_filterbank", sample_rate=RATE, window=480, hop=240, n_fft=1024)
    )
    fixed = audio_features(
        signal,
        AudioFrontEnd(
            kind="log_filterbank",
            sample_rate=RATE,
            window=480,
            hop=240,
            n_fft=1024,
            normalize="fixed",
            mean=2.0,
            std=4.0,
        ),
    )
    assert torch.allclose(fixed, (raw - 2.0) / 4.0, atol=1e-6)
    per_sample = audio_features(signal, AudioFrontEnd(sample_rate=RATE, normalize="per_sample"))
    assert abs(float(per_sample.mean())) < 1e-4 and float(per_sample.std(correction=0)) == pytest.approx(
        1, abs=1e-4
    )


def test_volume_jitter_gain_range_and_effect():
    """The gain scales the waveform: in the log domain every cell moves by 2 log(gain), and gains cover (0.9, 1.1)."""
    front_end = AudioFrontEnd(kind="log_mel", sample_rate=16000, n_filters=40, floor=1e-12)
    signal = torch.from_numpy(_test_signal(0.25, 16000))
    plain = audio_features(signal, front_end)
    above_floor = plain > math.log(1e-12) + 1  # cells at the floor do not move (empty filters, silence)
    assert above_floor.float().mean() > 0.5
    augment = AudioAugment(volume_jitter=(0.9, 1.1))
    gains = []
    for seed in range(200):
        jittered = audio_features(signal, front_end, augment, torch.Generator().manual_seed(seed))
        shift = ((jittered - plain) / 2)[above_floor]
        assert float(shift.max() - shift.min()) < 1e-4  # one gain for the whole view
        gains.append(math.exp(float(shift.mean())))
    assert 0.9 <= min(gains) < 0.91 and 1.09 < max(gains) <= 1.1


def test_spec_augment_masks_configured_widths():
    spec = torch.randn(1, 40, 99)
    augment = AudioAugment(
        freq_masks=2, freq_mask_param=5, time_masks=1, time_mask_param=12, mask_value=-100.0
    )
    freq_widths, time_widths = set(), set()
    for seed in range(300):
        out = spec_augment(spec, augment, torch.Generator().manual_seed(seed))
        masked = out == -100.0
        rows = masked.all(dim=2)[0]  # (F,) rows masked across all frames
        frames = masked.all(dim=1)[0]  # (S,)
        assert torch.equal(
            masked[0], rows[:, None] | frames[None, :]
        )  # masks are whole rows or whole columns
        assert torch.equal(out[~masked], spec[~masked])
        assert int(rows.sum()) <= 2 * 4 and int(frames.sum()) <= 11
        freq_widths.add(int(rows.sum()) if seed % 2 else None)
        time_widths.add(int(frames.sum()))
    assert time_widths == set(range(12))  # widths 0 .. T - 1, as GDT draws int(U(0, T))
    assert max(w for w in freq_widths if w is not None) >= 6  # two bands of up to 4 rows each


def test_single_frequency_mask_widths():
    spec = torch.randn(1, 40, 99)
    augment = AudioAugment(freq_masks=1, freq_mask_param=3, mask_value=float("nan"))
    widths, starts = set(), set()
    for seed in range(200):
        rows = spec_augment(spec, augment, torch.Generator().manual_seed(seed))[0].isnan().all(dim=1)
        widths.add(int(rows.sum()))
        if rows.any():
            band = rows.nonzero()[:, 0]
            assert torch.equal(
                band, torch.arange(int(band[0]), int(band[0]) + len(band))
            )  # one contiguous band
            starts.add(int(band[0]))
    assert widths == {0, 1, 2}
    assert min(starts) == 0 and max(starts) >= 37  # starts reach both ends


def test_augmentations_are_a_function_of_the_generator():
    front_end, _, augment = audio_preset("gdt")
    signal = torch.from_numpy(_test_signal())
    one = audio_features(signal, front_end, augment, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global generator plays no part
    two = audio_features(signal, front_end, augment, torch.Generator().manual_seed(7))
    other = audio_features(signal, front_end, augment, torch.Generator().manual_seed(8))
    assert torch.equal(one, two) and not torch.equal(one, other)


def test_presets_hold_the_original_settings():
    gdt, window, augment = audio_preset("gdt")
    assert (gdt.kind, gdt.sample_rate, gdt.window, gdt.hop, gdt.n_fft, gdt.n_filters) == (
        "log_filterbank",
        24000,
        480,
        240,
        1024,
        40,
    )
    assert (
        gdt.pcm16 and gdt.preemphasis == 0.97 and (gdt.normalize, gdt.mean, gdt.std) == ("fixed", 1.93, 17.89)
    )
    assert (augment.volume_jitter, augment.freq_masks, augment.freq_mask_param) == ((0.9, 1.1), 1, 3)
    assert (augment.time_masks, augment.time_mask_param) == (1, 6)
    assert (window.seconds, window.align, window.fit) == (1.0, "start", "shift")
    for name in ("stica", "selavi"):
        front_end, _, augment = audio_preset(name)
        assert front_end.n_filters == 257 and front_end.normalize == "none"
        assert augment.volume_jitter == (0.9, 1.1) and augment.freq_masks == augment.time_masks == 0


def test_kind_defaults_for_preemphasis_and_floor():
    assert AudioFrontEnd(kind="log_filterbank").preemphasis == 0.97
    assert AudioFrontEnd(kind="log_filterbank").floor == np.finfo(np.float64).eps
    assert AudioFrontEnd().preemphasis == 0.0 and AudioFrontEnd().floor == 1e-6
    assert AudioFrontEnd(kind="spectrogram", n_fft=512, window=400).num_rows == 257


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: AudioFrontEnd(kind="mfcc"), "AudioFrontEnd.kind"),
        (lambda: AudioFrontEnd(n_fft=256, window=400), "AudioFrontEnd.n_fft"),
        (lambda: AudioFrontEnd(f_max=9000), "AudioFrontEnd.f_max"),
        (lambda: AudioFrontEnd(normalize="fixed", std=0), "AudioFrontEnd.std"),
        (lambda: AudioWindow(align="end"), "AudioWindow.align"),
        (lambda: AudioAugment(volume_jitter=(1.1, 0.9)), "AudioAugment.volume_jitter"),
        (lambda: AudioAugment(time_masks=1), "AudioAugment.time_mask_param"),
        (lambda: audio_preset("wav2vec"), "wav2vec"),
    ],
)
def test_bad_settings_name_the_field(build, field):
    with pytest.raises(AudioConfigError, match=field) as caught:
        build()
    assert isinstance(caught.value, UsageError) and "\n" not in str(caught.value)


def test_mask_wider_than_the_spectrogram_is_an_error():
    with pytest.raises(AudioConfigError, match="exceeds"):
        spec_augment(torch.zeros(1, 40, 10), AudioAugment(time_masks=1, time_mask_param=11))


def test_settings_read_from_yaml():
    """The three dataclasses are plain typed fields: the Lightning CLI's parser builds them from YAML."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--front_end", type=AudioFrontEnd)
    parser.add_argument("--window", type=AudioWindow)
    parser.add_argument("--augment", type=AudioAugment)
    config = parser.parse_string(
        "front_end: {kind: log_filterbank, sample_rate: 24000, window: 480, hop: 240, n_fft: 1024, n_filters: 257,"
        " pcm16: true}\n"
        "window: {seconds: 2.0, align: centre}\n"
        "augment: {volume_jitter: [0.9, 1.1], time_masks: 1, time_mask_param: 6}\n"
    )
    built = parser.instantiate(config)
    assert built.front_end == audio_preset("stica")[0]
    assert built.window == AudioWindow(seconds=2.0, align="centre")
    assert built.augment == AudioAugment(volume_jitter=(0.9, 1.1), time_masks=1, time_mask_param=6)
