"""Compressed domain in VideoDataset: the RGB clip, its motion vectors and its keyframe share one crop and flip."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.compressed import read_motion_vectors
from zoo.data.datasets import VideoDataset
from zoo.data.encode import write_video
from zoo.data.formats import VideoRecord
from zoo.data.samplers import RandomClipSampler, UniformClipSampler
from zoo.data.transforms import build_transform
from zoo.errors import UsageError

NUM_FRAMES = 24
GOP = 12


@pytest.fixture(scope="module")
def moving_object(tmp_path_factory) -> Path:
    """64x96: a static grey texture with a green marker at (4..12, 4..12), and a red textured 24x24 square
    (rows 24..48) moving right 2 px per frame from x = 8. P-frames only, a keyframe every 12 frames."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, (16, 24, 1), dtype=np.uint8).repeat(4, 0).repeat(4, 1).repeat(3, 2)
    texture = rng.integers(150, 256, (6, 6), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    frames = []
    for t in range(NUM_FRAMES):
        frame = background.copy()
        frame[4:12, 4:12] = (0, 255, 0)
        x = 8 + 2 * t
        frame[24:48, x : x + 24] = 0
        frame[24:48, x : x + 24, 0] = texture
        frames.append(frame)
    path = tmp_path_factory.mktemp("compressed") / "moving.mp4"
    return write_video(path, np.stack(frames), 25.0, gop=GOP, bframes=0)


def _red(frame: torch.Tensor) -> torch.Tensor:  # (C, H, W) in [0, 1] -> (H, W) bool
    return (frame[0] > 0.45) & (frame[1] < 0.2)


def _green(frame: torch.Tensor) -> torch.Tensor:
    return (frame[1] > 0.7) & (frame[0] < 0.3)


def test_motion_vectors_and_keyframe_follow_the_clips_crop_and_flip(moving_object):
    transform = build_transform("train", size=48, scale=(0.4, 1.0), mean=(0, 0, 0), std=(1, 1, 1))
    dataset = VideoDataset(
        [VideoRecord(moving_object)],
        RandomClipSampler(num_frames=4, stride=1),
        transform,
        motion_vectors=True,
        keyframe=True,
    )
    flips, ious, markers = set(), [], 0
    for epoch in range(12):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        video, motion, keyframe = sample["video"], sample["motion_vectors"], sample["keyframe"]
        assert (
            video.shape == (3, 4, 48, 48) and motion.shape == (2, 4, 6, 6) and keyframe.shape == (3, 48, 48)
        )
        # the object moves right in the video; leftwards in the clip when it was flipped
        columns = [torch.nonzero(_red(video[:, t]))[:, 1].float().mean() for t in (0, 3)]
        flipped = bool(columns[1] < columns[0])
        flips.add(flipped)
        for t in range(4):
            moving = motion[0, t].abs() > 1  # (6, 6) cells with motion
            if not moving.any():  # a keyframe: no vectors
                continue
            cells = torch.nn.functional.adaptive_avg_pool2d(_red(video[:, t])[None].float(), (6, 6))[0] > 0.5
            ious.append(((cells & moving).sum() / (cells | moving).sum()).item())
            dx = motion[0, t][cells].mean()
            assert (dx < 0) if flipped else (dx > 0)  # a flip turns the vectors round too
        marker = _green(video[:, 0])
        if marker.sum() > 4:  # the static marker sits at the same place in the clip and its keyframe
            markers += 1
            assert (marker & _green(keyframe)).sum() / (marker | _green(keyframe)).sum() > 0.8
    assert flips == {True, False} and markers >= 2
    assert np.mean(ious) > 0.7 and np.mean(np.array(ious) > 0.5) > 0.8  # frames cut at the edge overlap less


def test_motion_window_after_the_clip_and_the_nearest_keyframe(moving_object):
    dataset = VideoDataset(
        [VideoRecord(moving_object)],
        UniformClipSampler(num_frames=4, stride=1),  # centre of the 24 - 5 frames before the window: 7..10
        None,
        motion_vectors=True,
        keyframe=True,
        motion_offset=2,
        motion_frames=3,
    )
    sample = dataset[0]
    assert sample["frame_indices"].tolist() == [[7, 8, 9, 10]]
    expected, _ = read_motion_vectors(moving_object, [13, 14, 15])  # 2 frames after 10, then 3 frames
    torch.testing.assert_close(sample["motion_vectors"], expected.permute(1, 0, 2, 3))
    assert sample["keyframe"].shape == (3, 64, 96)
    # keyframes are 0 and 12: 12 is nearer the clip; the frame shows the object at x = 8 + 2 * 12
    red_columns = torch.nonzero(_red(sample["keyframe"]))[:, 1]
    assert red_columns.min().item() == pytest.approx(32, abs=1)


def test_motion_vectors_read_from_bytes(moving_object):
    from_path, _ = read_motion_vectors(moving_object, [3, 5])
    from_bytes, _ = read_motion_vectors(io.BytesIO(moving_object.read_bytes()), [3, 5])
    assert torch.equal(from_path, from_bytes)


def test_compressed_options_need_one_clip_and_a_known_block(moving_object):
    with pytest.raises(UsageError, match="one clip per sample"):
        VideoDataset(
            [VideoRecord(moving_object)], RandomClipSampler(num_frames=4), None, views=2, keyframe=True
        )
    with pytest.raises(UsageError, match="motion_block"):
        VideoDataset(
            [VideoRecord(moving_object)], RandomClipSampler(num_frames=4), motion_vectors=True, motion_block=6
        )
