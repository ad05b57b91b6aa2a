"""``zoo explain``: a class out of range is one named line (exit 2); a run writes the masks and the overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.data.encode import write_video
from zoo.serialization import load_state_dict

MODEL = "motionformer-tiny-synthmotion"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = np.random.default_rng(0).integers(0, 255, size=(20, 64, 64, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, fps=16)


def test_target_out_of_range_is_one_named_line(video, tmp_path, capsys):
    assert main(["explain", MODEL, str(video), "--target", "8", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "zoo explain: error: target class 8 is out of range: the model has 8 classes (0..7)"
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_video_is_named(tmp_path, capsys):
    assert main(["explain", MODEL, str(tmp_path / "none.mp4"), "--target", "1", "--quiet"]) == 2
    assert "no such video file" in capsys.readouterr().err


@pytest.mark.slow
def test_explain_writes_masks_and_overlay(video, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", MODEL, str(video), "--target", "2", "--iterations", "2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "target 2: logit" in printed
    state = load_state_dict(out / "clip_preserve_class2_masks.safetensors")
    assert state["masks"].shape == (1, 8, 64, 64)  # (K, T, H, W)
    assert float(state["masks"].min()) >= 0 and float(state["masks"].max()) <= 1
    assert state["history"].shape == (1, 2, 2)
    gif = Image.open(out / "clip_preserve_class2.gif")
    assert gif.n_frames == 8 and gif.size == (512, 256)  # the clip beside the masked clip, 4x enlarged
