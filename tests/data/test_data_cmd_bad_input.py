"""CMD's data needs: room for the motion window after the clip, and a keyframe near the clip.

A video too short for the clip plus its future window (and the hard negatives read with it), or without a
keyframe within ``keyframe_reach`` of the clip, is skipped and counted with the reason — never a sample
whose motion window repeats the last frame, or a keyframe from far away.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.compressed import read_motion_vectors
from zoo.data.datasets import UnreadableVideoWarning, VideoDataset
from zoo.data.encode import write_video
from zoo.data.formats import VideoRecord
from zoo.data.samplers import RandomClipSampler, UniformClipSampler
from zoo.data.video import VideoDecodeError


def _moving(path: Path, num_frames: int, gop: int) -> Path:
    """64x64: a textured square moving right 1 px per frame over a texture; P-frames, keyframes every ``gop``."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, (16, 16, 1), dtype=np.uint8).repeat(4, 0).repeat(4, 1).repeat(3, 2)
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        frames[t, 20:40, 4 + t : 24 + t] = (200, 30, 30)
    return write_video(path, frames, 25.0, gop=gop, bframes=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cmd_bad_input")
    return {
        "long": _moving(root / "long.mp4", 24, gop=12),
        "short": _moving(root / "short.mp4", 12, gop=12),
        "one_keyframe": _moving(root / "one_keyframe.mp4", 32, gop=32),  # a keyframe at frame 0 only
    }


def _cmd_dataset(records: list[Path], **kwargs) -> VideoDataset:
    """4-frame clips, stride 2 (7 frames), motion vectors of 8 frames starting 2 frames after the clip."""
    options = dict(motion_vectors=True, motion_offset=2, motion_frames=8, max_error_fraction=1.0)
    return VideoDataset(
        [VideoRecord(path) for path in records],
        kwargs.pop("sampler", RandomClipSampler(num_frames=4, stride=2)),
        None,
        **{**options, **kwargs},
    )


def test_clips_leave_room_for_the_motion_window(videos):
    dataset = _cmd_dataset([videos["long"]])
    starts = set()
    for epoch in range(64):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        clip = sample["frame_indices"][0]
        last_motion_frame = int(clip.max()) + 2 + 8
        assert last_motion_frame <= 23  # 24 frames: the window of 8 frames 2 frames after the clip fits
        starts.add(int(clip[0]))
        expected, _ = read_motion_vectors(
            videos["long"], list(range(last_motion_frame - 7, last_motion_frame + 1))
        )
        torch.testing.assert_close(sample["motion_vectors"], expected.permute(1, 0, 2, 3))
    # every start that fits is drawn: 24 - (7 + 2 + 8) = 7
    assert starts == set(range(8))
    assert dataset.error_stats()["failed"] == 0


def test_a_video_too_short_for_clip_and_motion_window_is_skipped_and_counted(videos, tmp_path):
    log = tmp_path / "errors.jsonl"
    dataset = _cmd_dataset([videos["short"], videos["long"]], error_log=log)
    with pytest.warns(
        UnreadableVideoWarning, match="needs 17 frames for clip \\+ future \\+ negatives, has 12"
    ):
        sample = dataset[0]
    assert sample["index"] == 1  # the other video in its place, not a padded one
    assert sample["motion_vectors"].abs().sum() > 0
    stats = dataset.error_stats()
    assert stats["bad_records"] == 1 and stats["bad_paths"] == [str(videos["short"])]
    (line,) = log.read_text().splitlines()
    assert json.loads(line)["reason"].endswith("needs 17 frames for clip + future + negatives, has 12")
    assert dataset.load_exactly(0) is None  # known bad: not tried again


def test_a_video_too_short_raises_with_on_error_raise(videos):
    dataset = _cmd_dataset([videos["short"]], on_error="raise")
    with pytest.raises(VideoDecodeError, match=r"short\.mp4.*needs 17 frames for clip \+ future"):
        dataset[0]


def test_the_eval_clip_is_centred_in_the_frames_that_leave_room(videos):
    dataset = _cmd_dataset([videos["long"]], sampler=UniformClipSampler(num_frames=4, stride=2))
    # 24 frames - 10 for the motion window: the centre clip of 14 frames starts at (14 - 7) // 2 = 3
    assert dataset[0]["frame_indices"].tolist() == [[3, 5, 7, 9]]


def test_no_keyframe_within_reach_is_skipped_and_counted(videos):
    sampler = UniformClipSampler(num_frames=4, stride=2)  # the centre clip of 32 frames: frames 12..18
    far = VideoDataset(
        [VideoRecord(videos["one_keyframe"]), VideoRecord(videos["long"])],
        sampler,
        None,
        keyframe=True,
        keyframe_reach=4,
        max_error_fraction=1.0,
    )
    with pytest.warns(
        UnreadableVideoWarning, match="no keyframe within 4 frames of the clip \\(frames 12-18\\)"
    ):
        sample = far[0]
    assert sample["index"] == 1 and far.error_stats()["bad_paths"] == [str(videos["one_keyframe"])]
    near = VideoDataset(
        [VideoRecord(videos["one_keyframe"])], sampler, None, keyframe=True, keyframe_reach=12
    )
    keyframe = near[0]["keyframe"]  # frame 0: the square at x = 4..23
    red = (keyframe[0] > 0.6) & (keyframe[1] < 0.3)
    assert torch.nonzero(red)[:, 1].min().item() == pytest.approx(4, abs=1)
