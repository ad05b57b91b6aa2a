"""VideoDataset: frame-exact clips, views, audio, text, extras, determinism and robustness to bad files."""

import json
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.data.datasets import UnreadableVideoWarning, VideoDataset, collate_samples
from zoo.data.encode import decode_index, index_pattern_frames, write_video
from zoo.data.formats import VideoRecord
from zoo.data.samplers import MultiClipViewsSampler, RandomClipSampler, UniformClipSampler
from zoo.data.transforms import build_transform
from zoo.data.video import VideoDecodeError

FPS = 10.0
NUM_FRAMES = 40


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    frames = index_pattern_frames(NUM_FRAMES, 32, 32)
    t = np.arange(int(NUM_FRAMES / FPS * 16000)) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    files = {f"good{i}": write_video(root / f"good{i}.mp4", frames, FPS, gop=8) for i in range(8)}
    files["with_audio"] = write_video(root / "with_audio.mp4", frames, FPS, gop=8, audio=tone)
    files["wrong_ext_ok"] = write_video(root / "really_mp4.mp4", frames, FPS, gop=8).rename(
        root / "really_mp4.avi"
    )
    good_bytes = files["good0"].read_bytes()
    bad = {
        "zero_byte": root / "zero.mp4",
        "truncated": root / "truncated.mp4",
        "garbage": root / "garbage.mp4",
        "audio_only": root / "audio_only.m4a",
        "text_as_mp4": root / "notes.mp4",
    }
    bad["zero_byte"].write_bytes(b"")
    bad["truncated"].write_bytes(good_bytes[: len(good_bytes) // 3])
    bad["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _audio_only(bad["audio_only"])
    bad["text_as_mp4"].write_text("this is not a video\n")
    files.update(bad)
    return files


BAD = ("zero_byte", "truncated", "garbage", "audio_only", "text_as_mp4")


def _records(media, names, **kwargs) -> list[VideoRecord]:
    return [VideoRecord(media[n], label=i, **kwargs) for i, n in enumerate(names)]


def _decoded_indices(video: torch.Tensor) -> list[int]:
    """Frame indices drawn in a (C, T, H, W) float clip made without normalisation."""
    frames = (video.permute(1, 2, 3, 0) * 255).round().to(torch.uint8)
    return [decode_index(f) for f in frames]


def test_clip_is_frame_exact_and_sample_dict(media):
    dataset = VideoDataset(_records(media, ["good0", "good1"]), RandomClipSampler(num_frames=6, stride=3))
    sample = dataset[1]
    assert sample["video"].shape == (3, 6, 32, 32) and sample["video"].dtype == torch.float32
    assert sample["label"] == 1 and sample["index"] == 1
    assert sample["frame_indices"].shape == (1, 6)
    assert _decoded_indices(sample["video"]) == sample["frame_indices"][0].tolist()
    assert "video_views" not in sample and "audio" not in sample


def test_time_window_restricts_the_clip(media):
    record = VideoRecord(media["good0"], 0, start=1.0, end=2.0)  # frames 10..19
    dataset = VideoDataset([record], RandomClipSampler(num_frames=4, stride=2))
    for epoch in range(5):
        dataset.set_epoch(epoch)
        indices = dataset[0]["frame_indices"]
        assert indices.min() >= 10 and indices.max() < 20


def test_time_window_of_a_variable_frame_rate_video_uses_frame_times(odd_media):
    """``start=3.0`` in a 5.4 s VFR video was refused as past the end (40 frames at 25 fps: 1.6 s)."""
    times = np.asarray(odd_media["vfr_times_ms"]) / 1000
    on_screen_at_3s = int(np.searchsorted(times, 3.0, side="right")) - 1  # frame 29, shown from 2.96 s
    record = VideoRecord(odd_media["vfr_mkv"], 0, start=3.0, end=4.5)
    dataset = VideoDataset([record], UniformClipSampler(num_frames=4), on_error="raise")
    sample = dataset[0]
    indices = sample["frame_indices"][0].tolist()
    assert min(indices) >= on_screen_at_3s and times[max(indices)] < 4.5
    assert _decoded_indices(sample["video"]) == indices
    past_the_end = VideoRecord(odd_media["vfr_mkv"], 0, start=5.5)
    with pytest.raises(VideoDecodeError, match=r"outside the video \(5\.40 s\)"):
        VideoDataset([past_the_end], UniformClipSampler(num_frames=4), on_error="raise")[0]


def test_mpeg_program_stream_clips_are_frame_exact(odd_media):
    dataset = VideoDataset([VideoRecord(odd_media["mpeg_ps"], 0)], RandomClipSampler(num_frames=8, stride=2))
    for epoch in range(4):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        assert _decoded_indices(sample["video"]) == sample["frame_indices"][0].tolist()


def test_determinism_per_seed_epoch_index(media):
    records = _records(media, ["good0", "good1", "good2"])
    make = lambda seed: VideoDataset(  # noqa: E731
        records, RandomClipSampler(num_frames=4, stride=2), build_transform("simclr", size=16), seed=seed
    )
    a, b, c = make(0), make(0), make(1)
    assert torch.equal(a[2]["video"], b[2]["video"])
    assert not torch.equal(a[2]["video"], c[2]["video"])
    before = a[2]["video"]
    a.set_epoch(1)
    assert not torch.equal(before, a[2]["video"])
    a.set_epoch(0)
    assert torch.equal(before, a[2]["video"])


def test_multiple_views(media):
    records = _records(media, ["good0"])
    same = VideoDataset(records, RandomClipSampler(num_frames=4), build_transform("train", size=16), views=3)
    views = same[0]["video_views"]
    assert views.shape == (3, 3, 4, 16, 16)
    assert not torch.equal(views[0], views[1])  # same clip, different augmentations
    distinct = VideoDataset(records, MultiClipViewsSampler(num_frames=4, num_views=2, max_distance=1.0), None)
    sample = distinct[0]
    assert sample["video_views"].shape == (2, 3, 4, 32, 32)
    for view, indices in zip(sample["video_views"], sample["frame_indices"]):
        assert _decoded_indices(view) == indices.tolist()
    three = VideoDataset(
        records, UniformClipSampler(num_frames=4, num_clips=2), build_transform("three_crop", size=16)
    )
    assert three[0]["video_views"].shape == (6, 3, 4, 16, 16)


def test_audio_and_audio_mask(media):
    dataset = VideoDataset(
        _records(media, ["with_audio", "good0"]), UniformClipSampler(num_frames=4), audio=True
    )
    with_audio, silent = dataset[0], dataset[1]
    assert with_audio["audio"].shape == (1, 80, 201) and with_audio["audio_mask"].shape == (201,)
    assert with_audio["audio_mask"].all()
    assert with_audio["audio"].max() > silent["audio"].max()
    assert not silent["audio_mask"].any()  # no sound track: masked, not an error
    assert dataset.error_stats()["bad_records"] == 0


def test_text_and_extras(media):
    records = [
        VideoRecord(media["good0"], 0, caption=["one", "two", "three"], extra={"pid": 7}),
        VideoRecord(
            media["good1"],
            None,
            caption="only",
            extra={"pid": 8, "frame_labels": np.arange(NUM_FRAMES) // 10},
        ),
    ]
    dataset = VideoDataset(records, UniformClipSampler(num_frames=4, stride=5), text=True, extras=["pid"])
    texts = set()
    for epoch in range(40):
        dataset.set_epoch(epoch)
        texts.add(dataset[0]["text"])
    assert texts == {"one", "two", "three"}
    assert dataset[1]["text"] == "only" and dataset[1]["pid"] == 8 and dataset[1]["label"] == -1
    seg = VideoDataset(records[1:], UniformClipSampler(num_frames=4, stride=5), extras=["frame_labels"])
    sample = seg[0]
    np.testing.assert_array_equal(sample["frame_labels"], sample["frame_indices"][0] // 10)
    with pytest.raises(ValueError, match="no caption"):
        VideoDataset([VideoRecord(media["good0"], 0)], UniformClipSampler(num_frames=4), text=True)


def test_frame_folder_records(media, tmp_path):
    from PIL import Image

    frames = index_pattern_frames(12, 32, 32)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"0001C1T0001F{i + 1:03d}.jpg")
        Image.fromarray(frame).save(paths[-1], quality=95)
    record = VideoRecord(tmp_path / "0001C1T0001", 0, extra={"frames": paths, "fps": 25.0})
    sample = VideoDataset([record], UniformClipSampler(num_frames=4, stride=2))[0]
    assert _decoded_indices(sample["video"]) == sample["frame_indices"][0].tolist()


def test_wrong_extension_but_valid_video_is_read(media):
    dataset = VideoDataset(_records(media, ["wrong_ext_ok"]), UniformClipSampler(num_frames=4))
    assert dataset[0]["video"].shape == (3, 4, 32, 32)


def test_bad_files_are_skipped_counted_and_warned(media, tmp_path):
    names = [f"good{i}" for i in range(8)] + ["with_audio", "wrong_ext_ok", *BAD]
    log = tmp_path / "errors.jsonl"
    dataset = VideoDataset(
        _records(media, names), UniformClipSampler(num_frames=4), max_error_fraction=0.5, error_log=log
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = [dataset[i] for i in range(len(dataset))]
    messages = [str(w.message) for w in caught if issubclass(w.category, UnreadableVideoWarning)]
    for name in BAD:
        assert any(str(media[name]) in m for m in messages), name  # the path is in the warning
    bad_indices = {names.index(n) for n in BAD}
    for i, sample in enumerate(samples):
        if i in bad_indices:
            assert sample["index"] not in bad_indices  # replaced by a readable record
        assert sample["video"].abs().sum() > 0  # never a silent zero clip
    stats = dataset.error_stats()
    assert stats["bad_records"] == len(BAD) and stats["failed"] >= len(BAD)
    assert sorted(stats["bad_paths"]) == sorted(str(media[n]) for n in BAD)
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(entry["path"] for entry in logged) == sorted(str(media[n]) for n in BAD)
    assert all(entry["reason"] for entry in logged)
    # the replacement draw is deterministic
    again = VideoDataset(_records(media, names), UniformClipSampler(num_frames=4), max_error_fraction=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [again[i]["index"] for i in sorted(bad_indices)] == [
            samples[i]["index"] for i in sorted(bad_indices)
        ]


def test_too_many_bad_files_stop_with_a_clear_error(media):
    names = ["good0", "good1", "good2", "zero_byte", "garbage"]  # 2 of 5 bad > 25%
    dataset = VideoDataset(_records(media, names), UniformClipSampler(num_frames=4), max_error_fraction=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset[3]  # 1 of 5: tolerated
        with pytest.raises(RuntimeError, match=r"2 of 5 videos \(40.0%\) could not be decoded.*garbage.mp4"):
            dataset[4]


def test_on_error_raise(media):
    dataset = VideoDataset(
        _records(media, ["good0", "truncated"]), UniformClipSampler(num_frames=4), on_error="raise"
    )
    assert dataset[0]["index"] == 0
    with pytest.raises(VideoDecodeError, match=r"truncated\.mp4"):
        dataset[1]


def test_window_outside_video_counts_as_bad(media):
    records = [VideoRecord(media["good0"], 0), VideoRecord(media["good1"], 1, start=100.0, end=110.0)]
    dataset = VideoDataset(records, UniformClipSampler(num_frames=4), max_error_fraction=0.5)
    with pytest.warns(UnreadableVideoWarning, match="outside the video"):
        assert dataset[1]["index"] == 0


def test_counts_are_shared_across_workers(media):
    names = [f"good{i}" for i in range(8)] + ["zero_byte", "garbage"]
    dataset = VideoDataset(_records(media, names), UniformClipSampler(num_frames=4), max_error_fraction=0.3)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=collate_samples)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 10
    stats = dataset.error_stats()  # in the main process, filled by the workers
    assert stats["bad_records"] == 2 and stats["loaded"] == 10
    assert sorted(stats["bad_paths"]) == sorted([str(media["zero_byte"]), str(media["garbage"])])


def test_collate_keeps_strings_and_lists():
    samples = [
        {"video": torch.zeros(3, 2, 4, 4), "label": 1, "text": "a", "answers": ["x", "y"]},
        {"video": torch.ones(3, 2, 4, 4), "label": 2, "text": "b", "answers": ["z", "w"]},
    ]
    batch = collate_samples(samples)
    assert batch["video"].shape == (2, 3, 2, 4, 4) and batch["label"].tolist() == [1, 2]
    assert batch["text"] == ["a", "b"] and batch["answers"] == [["x", "y"], ["z", "w"]]
    with pytest.raises(ValueError, match="different keys"):
        collate_samples([{"a": 1}, {"b": 2}])


def test_plain_callable_transform_without_generator(media):
    dataset = VideoDataset(
        _records(media, ["good0"]), UniformClipSampler(num_frames=4), lambda clip: clip.float().mean(-1)
    )
    assert dataset[0]["video"].shape == (4, 32, 32)
