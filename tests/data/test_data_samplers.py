"""Clip samplers: shapes, bounds, strides, determinism, short videos, multi-view protocols."""

import numpy as np
import pytest
import torch

from zoo.data.samplers import (
    MultiClipViewsSampler,
    MultiViewTestSampler,
    RandomClipSampler,
    UniformClipSampler,
    build_sampler,
)
from zoo.errors import UsageError


@pytest.mark.parametrize("video_len", [61, 100, 1000])
def test_random_clip_is_in_bounds_with_its_stride(video_len):
    sampler = RandomClipSampler(num_frames=16, stride=4)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        clip = sampler(video_len, 25.0, rng)
        assert clip.shape == (1, 16) and clip.dtype == np.int64
        assert clip.min() >= 0 and clip.max() < video_len
        assert (np.diff(clip[0]) == 4).all()
        starts.add(int(clip[0, 0]))
    max_start = video_len - 61
    assert max(starts) <= max_start
    assert len(starts) == 1 if max_start == 0 else len(starts) > 10  # starts vary when they can


def test_random_clip_start_is_uniform_over_valid_range():
    sampler = RandomClipSampler(num_frames=4, stride=1)
    rng = np.random.default_rng(1)
    starts = np.array([sampler(14, 25.0, rng)[0, 0] for _ in range(3000)])
    counts = np.bincount(starts, minlength=11)
    assert len(counts) == 11  # starts 0..10
    assert counts.min() > 200  # ~273 each


def test_determinism_with_numpy_torch_and_int_seeds():
    sampler = MultiClipViewsSampler(num_frames=8, stride=2, num_views=3)
    for make in (np.random.default_rng, lambda s: torch.Generator().manual_seed(s), lambda s: s):
        a = sampler(500, 30.0, make(7))
        b = sampler(500, 30.0, make(7))
        c = sampler(500, 30.0, make(8))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_target_fps_sets_the_stride_from_the_frame_rate():
    sampler = RandomClipSampler(num_frames=5, target_fps=10.0)
    clip30 = sampler(300, 30.0, 0)[0]
    clip25 = sampler(300, 25.0, 0)[0]
    assert (np.diff(clip30) == 3).all()
    np.testing.assert_array_equal(clip25 - clip25[0], [0, 2, 5, 8, 10])  # 2.5 rounded per frame


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("clamp", [0, 3, 6, 9, 9, 9]),
        ("loop", [0, 3, 6, 9, 2, 5]),
        ("stretch", [0, 2, 4, 5, 7, 9]),
    ],
)
def test_short_video_policies(policy, expected):
    sampler = RandomClipSampler(num_frames=6, stride=3, short_video=policy)
    clip = sampler(10, 25.0, 0)
    np.testing.assert_array_equal(clip[0], expected)


def test_single_frame_video_and_empty_video():
    clip = UniformClipSampler(num_frames=4, stride=2)(1, 25.0)
    np.testing.assert_array_equal(clip, [[0, 0, 0, 0]])
    with pytest.raises(ValueError, match="0 frames"):
        RandomClipSampler(num_frames=4)(0, 25.0, 0)


def test_uniform_center_and_spread():
    centre = UniformClipSampler(num_frames=4, stride=2)(101, 25.0)
    span = 7
    assert centre[0, 0] == (101 - span) // 2
    spread = UniformClipSampler(num_frames=4, stride=2, num_clips=3)(101, 25.0)
    assert spread.shape == (3, 4)
    assert spread[0, 0] == 0 and spread[-1, -1] == 100
    assert spread[1, 0] == 47


def test_uniform_frames_mode_covers_the_whole_video():
    clip = UniformClipSampler(num_frames=8, mode="frames")(800, 25.0)
    np.testing.assert_array_equal(clip[0], np.arange(8) * 100 + 50)
    short = UniformClipSampler(num_frames=8, mode="frames")(3, 25.0)
    assert short.max() == 2 and short.min() == 0
    with pytest.raises(ValueError, match="num_clips=1"):
        UniformClipSampler(num_frames=8, mode="frames", num_clips=2)


def test_multiview_test_sampler_clips_and_views():
    sampler = MultiViewTestSampler(num_frames=8, stride=4, num_clips=5, num_crops=3)
    clips = sampler(300, 30.0)
    assert clips.shape == (5, 8)
    np.testing.assert_array_equal(clips[:, 0], np.round(np.linspace(0, 300 - 29, 5)))
    assert np.array_equal(clips, sampler(300, 30.0, 123))  # no randomness
    views = sampler.per_view(clips)
    assert views.shape == (15, 8) and sampler.num_views == 15
    np.testing.assert_array_equal(views[3:6], np.repeat(clips[1:2], 3, axis=0))


def test_multiclip_views_same_clip():
    sampler = MultiClipViewsSampler(num_frames=4, stride=2, num_views=3, same_clip=True)
    clips = sampler(100, 25.0, 3)
    assert clips.shape == (3, 4)
    assert (clips == clips[0]).all()


def test_multiclip_views_respect_max_distance():
    sampler = MultiClipViewsSampler(num_frames=4, stride=2, num_views=4, max_distance=1.0)
    rng = np.random.default_rng(0)
    distances = []
    for _ in range(200):
        clips = sampler(1000, 10.0, rng)
        assert clips.min() >= 0 and clips.max() < 1000
        distances += np.abs(clips[1:, 0] - clips[0, 0]).tolist()
    assert max(distances) <= 10 and max(distances) >= 8  # 1 s at 10 fps, and it is reached
    unbounded = MultiClipViewsSampler(num_frames=4, stride=2, num_views=2)
    far = [np.abs(np.diff(unbounded(1000, 10.0, rng)[:, 0]))[0] for _ in range(100)]
    assert max(far) > 100


def test_build_sampler_and_bad_arguments():
    assert isinstance(build_sampler("random", num_frames=4), RandomClipSampler)
    with pytest.raises(KeyError, match="unknown clip sampler"):
        build_sampler("nope")
    with pytest.raises(UsageError, match="stride must be > 0, got 0"):
        RandomClipSampler(num_frames=4, stride=0)
    with pytest.raises(UsageError, match="num_frames must be >= 1, got 0"):
        UniformClipSampler(num_frames=0)
    with pytest.raises(UsageError, match="short_video"):
        RandomClipSampler(num_frames=4, short_video="pad")
