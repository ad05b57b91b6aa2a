"""Media that the data tests share: index-pattern videos through any PyAV encoder and container, and the
files that once decoded wrong (MPEG-PS with B-frames, variable-frame-rate Matroska)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from zoo.data.encode import index_pattern_frames


def _encode_index_video(
    path: Path,
    codec: str,
    options: dict[str, str],
    gop: int = 12,
    max_b_frames: int = 2,
    container_format: str | None = None,
    num_frames: int = 90,
) -> Path:
    """Index-pattern video (64x64, 30 fps) through any PyAV encoder and muxer (write_video makes H.264)."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.gop_size, stream.codec_context.max_b_frames = gop, max_b_frames
        stream.options = options
        for i, image in enumerate(index_pattern_frames(num_frames, 64, 64)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _variable_rate_mkv(path: Path, times_ms: list[int]) -> Path:
    """Index-pattern H.264 (B-frames) in Matroska, frame i shown at ``times_ms[i]``; the nominal rate is 25."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        stream.options = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
        for t, image in zip(times_ms, index_pattern_frames(len(times_ms), 64, 64)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def encode_index_video():
    """``encode(path, codec, options, gop=12, max_b_frames=2, container_format=None, num_frames=90)``."""
    return _encode_index_video


@pytest.fixture(scope="session")
def odd_media(tmp_path_factory) -> dict:
    """``mpeg_ps``: 48 frames of MPEG-2 with 3 B-frames in MPEG-PS (the demuxer repeats timestamps: three
    frames were lost from the count); ``vfr_mkv``: 40 frames shown at ``vfr_times_ms`` (20 at 25 fps, then
    20 frames 0.24 s apart: 5.4 s, where frame count / nominal fps says 1.6 s)."""
    root = tmp_path_factory.mktemp("odd_media")
    times_ms = [40 * i for i in range(20)] + [800 + 240 * i for i in range(20)]
    return {
        "mpeg_ps": _encode_index_video(
            root / "program_stream.mpg", "mpeg2video", {"qscale": "2"}, 12, 3, "vob", num_frames=48
        ),
        "vfr_mkv": _variable_rate_mkv(root / "variable_rate.mkv", times_ms),
        "vfr_times_ms": times_ms,
    }
