"""Intra-video triplets (anchor, key, negative at another time); too-short videos are skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data.datasets import UnreadableVideoWarning, VideoDataset
from zoo.data.encode import write_video
from zoo.data.formats import VideoRecord
from zoo.data.intra_video import ClipUnavailableError, IntraVideoTripletSampler


def test_key_repeats_the_anchor_and_the_negative_starts_far_enough():
    sampler = IntraVideoTripletSampler(num_frames=4, stride=2.0, min_gap=3)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        clips = sampler(20, 16.0, rng)  # span 7: starts 0..13
        assert clips.shape == (3, 4) and clips.max() < 20
        assert np.array_equal(clips[0], clips[1])
        assert abs(int(clips[2, 0]) - int(clips[0, 0])) >= 3
        starts.add(int(clips[2, 0]))
    assert starts == set(range(14))


def test_a_video_without_room_for_the_negative_is_refused_with_the_reason():
    sampler = IntraVideoTripletSampler(num_frames=4, stride=2.0, min_gap=2)
    with pytest.raises(ClipUnavailableError, match="8 frames cannot hold a clip of 7 frames"):
        sampler(8, 16.0, 0)
    sampler(9, 16.0, 0)  # 9 frames: starts 0 and 2


def test_dataset_skips_and_counts_short_videos_never_zero_clips(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    long = write_video(tmp_path / "long.mp4", frames, 16.0, gop=8)
    short = write_video(tmp_path / "short.mp4", frames[:6], 16.0, gop=8)
    dataset = VideoDataset(
        [VideoRecord(long, label=0), VideoRecord(short, label=1)],
        IntraVideoTripletSampler(num_frames=4, stride=2.0, min_gap=2),
        max_error_fraction=0.5,
    )
    with pytest.warns(UnreadableVideoWarning, match=r"short.mp4.*6 frames cannot hold"):
        sample = dataset[1]
    assert sample["label"] == 0 and sample["video_views"].shape == (3, 3, 4, 16, 16)
    stats = dataset.error_stats()
    assert stats["failed"] == 1 and stats["bad_paths"] == [str(short)]
    assert torch.equal(sample["frame_indices"][0], sample["frame_indices"][1])
