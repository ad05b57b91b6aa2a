"""SynthMotion's per-frame object masks: the object is where they say, and nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.data import synthmotion
from zoo.data.synthmotion import SynthMotionConfig, object_masks


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    config = SynthMotionConfig(
        seed=3,
        num_frames=8,
        train_per_class=0,
        val_per_class=0,
        test_per_class=1,
        num_classes=8,
        audio=False,
        long_videos=1,
        reid_identities=0,
        languages=("en",),
        captions_per_language=1,
        qa_per_clip=0,
    )
    root = synthmotion.generate(tmp_path_factory.mktemp("synth"), config, progress=False, workers=1)
    return root, config


@pytest.mark.parametrize(
    "relpath", ["videos/test/test_00001.mp4", "videos/test/test_00006.mp4", "long/square_tour_000.mp4"]
)
def test_frames_change_only_where_the_object_is(tiny_set, relpath):
    root, config = tiny_set
    job = next(job for job in synthmotion._make_plan(config).jobs if job.relpath == relpath)
    frames, _ = synthmotion._render_frames(job, config)  # (T, H, W, 3) before encoding
    masks = object_masks(root, relpath)  # (T, H, W)
    assert masks.shape == frames.shape[:3]
    assert (masks.reshape(len(masks), -1).max(axis=1) == 1).all()  # the object is in every frame
    changed = np.abs(frames.astype(int) - frames[:1].astype(int)).max(axis=-1) > 0  # (T, H, W), static camera
    assert changed[1:].any()
    assert not (changed & (masks == 0) & (masks[:1] == 0)).any()
    # and where the mask is full (object or outline) over the empty background of frame 0, the pixels changed
    inside = (masks == 1) & (masks[:1] == 0)
    assert inside.any()
    assert changed[inside].mean() > 0.9


def test_an_unknown_video_is_named(tiny_set):
    root, _ = tiny_set
    with pytest.raises(FileNotFoundError, match=r"no SynthMotion video 'videos/test/nope\.mp4'"):
        object_masks(root, "videos/test/nope.mp4")
