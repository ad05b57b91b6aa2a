"""zoo.transform_for: a video file -> the test views a checkpoint expects."""

import numpy as np
import pytest
import torch

import zoo
from zoo.data.encode import decode_index, index_pattern_frames, write_video
from zoo.data.preprocess import ClipPreprocessor


@pytest.fixture(scope="module")
def indexed_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre") / "index.mp4"
    write_video(path, index_pattern_frames(48, 64, 64), fps=12.0, gop=12)
    return path


def _indices(views):
    """Frame index of every frame of every view, read back from the pattern (un-normalised by min/max)."""
    out = []
    for view in views:  # (C, T, H, W)
        frames = view.permute(1, 2, 3, 0)
        frames = ((frames - frames.min()) / (frames.max() - frames.min()) * 255).round().to(torch.uint8)
        out.append([decode_index(f.numpy()) for f in frames])
    return np.array(out)


def test_multiview_clips_and_crops(indexed_video):
    pre = ClipPreprocessor(num_frames=4, stride=2, size=32, mean=(0.5,) * 3, std=(0.5,) * 3, clips=2, crops=3)
    views = pre(indexed_video)
    assert views.shape == (6, 3, 4, 32, 32)  # clips x crops, clip-major


def test_uniform_over_the_whole_video_when_no_stride(indexed_video):
    pre = ClipPreprocessor(num_frames=4, stride=None, size=64, mean=(0.5,) * 3, std=(0.5,) * 3, short_side=64)
    views = pre(indexed_video)
    assert views.shape == (1, 3, 4, 64, 64)
    idx = _indices(views)[0]
    assert idx.tolist() == [6, 18, 30, 42]  # centres of 4 equal segments of the 48 frames


def test_transform_for_reads_the_catalog(indexed_video):
    pre = zoo.transform_for("motionformer-ssv2")
    assert pre.channel_order == "bgr" and pre.stride is None and pre.size == 224 and pre.crops == 3
    tiny = zoo.transform_for("motionformer-tiny-synthmotion")
    assert tiny(indexed_video).shape == (1, 3, 8, 64, 64)
