"""Frame accuracy of every available decoding backend, seek policy, resize at decode and error paths.

Containers and GOP structures that once shifted frames: H.264 with B-frames in AVI (packet timestamps in
decode order), open GOPs (leading frames), AVI with a keyframe in every packet (seeks landing late),
MPEG-4 Part 2 in AVI, MPEG-TS; decord is checked to hand such files to PyAV.
"""

import io
import re
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from zoo.data import video
from zoo.data.encode import decode_index, index_pattern_frames, write_video
from zoo.data.video import (
    BACKENDS,
    PyAVFrameIterator,
    VideoDecodeError,
    VideoReader,
    available_backends,
    probe,
)

NUM_FRAMES = 90


def _backend_or_skip(backend: str) -> str:
    if backend not in available_backends():
        reason = video._torchcodec_problem() if backend == "torchcodec" else f"{backend} is not installed"
        pytest.skip(f"video backend {backend!r} unavailable here: {reason}")
    return backend


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Index-pattern videos with B-frames: long GOP (60), short GOP (12), Matroska (no frame count in the
    header), AVI (timestamps in decode order) and a raw H.264 stream (no timestamps at all: decoded
    sequentially)."""
    root = tmp_path_factory.mktemp("videos")
    frames = index_pattern_frames(NUM_FRAMES, 64, 64)
    return {
        "long_gop": write_video(root / "long_gop.mp4", frames, 30.0, gop=60, bframes=2),
        "short_gop": write_video(root / "short_gop.mp4", frames, 30.0, gop=12, bframes=2),
        "mkv": write_video(root / "no_count.mkv", frames, 30.0, gop=30, bframes=2),
        "avi": write_video(root / "b_frames.avi", frames, 30.0, gop=12, bframes=2),
        "raw_h264": write_video(root / "no_timestamps.h264", frames, 30.0, gop=30, bframes=2),
    }


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory, encode_index_video) -> dict[str, Path]:
    """Streams whose timestamps or GOPs break naive indexing; decord reads none of them right."""
    root = tmp_path_factory.mktemp("odd_videos")
    frames = index_pattern_frames(NUM_FRAMES, 64, 64)
    open_gop = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2:open-gop=1"}
    return {
        "avi_open_gop": encode_index_video(root / "open_gop.avi", "libx264", open_gop),
        "avi_all_keyframes": write_video(root / "all_keyframes.avi", frames, 30.0, gop=1, bframes=0),
        "avi_mpeg4": encode_index_video(root / "mpeg4_part2.avi", "mpeg4", {"qscale": "2"}),
        "mp4_open_gop": encode_index_video(root / "open_gop.mp4", "libx264", open_gop),
        "mpegts": write_video(root / "transport.ts", frames, 30.0, gop=12, bframes=2),
    }


def _patterns(rng: np.random.Generator) -> dict[str, list[int]]:
    return {
        "random": rng.integers(0, NUM_FRAMES, 24).tolist(),
        "uniform": np.linspace(0, NUM_FRAMES - 1, 16).round().astype(int).tolist(),
        "clip": list(range(40, 72, 2)),
        "reversed_with_repeats": [89, 61, 61, 60, 59, 0, 0, 30],
        "all": list(range(NUM_FRAMES)),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("video", ["long_gop", "short_gop", "mkv", "avi", "raw_h264"])
def test_frames_are_exactly_the_asked_ones(videos, backend, video):
    _backend_or_skip(backend)
    rng = np.random.default_rng(0)
    with VideoReader(videos[video], backend=backend) as reader:
        assert reader.metadata.num_frames == NUM_FRAMES
        for name, indices in _patterns(rng).items():
            frames = reader.get_frames(indices)
            assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 64, 64, 3)
            assert [decode_index(f) for f in frames] == indices, name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("video", ["long_gop", "mkv", "avi"])
def test_one_frame_at_a_time(videos, backend, video):
    """Consecutive calls on one reader (the decoder has read ahead between them) stay exact."""
    _backend_or_skip(backend)
    wanted = [*range(0, 30), 65, 66, 67, 64, 89, 88, 12, 11, 47]
    with VideoReader(videos[video], backend=backend) as reader:
        got = [decode_index(reader.get_frames([i])[0]) for i in wanted]
    assert got == wanted


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "video", ["avi_open_gop", "avi_all_keyframes", "avi_mpeg4", "mp4_open_gop", "mpegts"]
)
def test_odd_streams_are_exact_and_never_read_by_decord(odd_videos, backend, video):
    _backend_or_skip(backend)
    rng = np.random.default_rng(1)
    with VideoReader(odd_videos[video], backend=backend) as reader:
        assert reader.metadata.num_frames == NUM_FRAMES
        if backend != "pyav":  # decord and torchcodec return other frames than those asked on all of these
            assert reader.backend == "pyav"
        for name, indices in _patterns(rng).items():
            assert [decode_index(f) for f in reader.get_frames(indices)] == indices, name
    with VideoReader(odd_videos[video], backend=backend) as reader:
        wanted = [*range(8, 28), 60, 59, 36, 35, 24, 23, 89, 0]  # across keyframes, back and forth
        assert [decode_index(reader.get_frames([i])[0]) for i in wanted] == wanted


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("muxer,max_b_frames", [("vob", 3), ("mpeg", 2)])
def test_mpeg_program_stream_is_read_frame_exactly(
    tmp_path, encode_index_video, backend, muxer, max_b_frames
):
    """MPEG-2 with B-frames in MPEG-PS (.mpg): the demuxer makes up the timestamps of frames sharing a PES
    packet and repeats some (three frames were lost from the count, reads skipped frames); frames are
    counted and read by decoding instead."""
    _backend_or_skip(backend)
    path = encode_index_video(
        tmp_path / "program_stream.mpg", "mpeg2video", {"qscale": "2"}, 12, max_b_frames, muxer, num_frames=48
    )
    with av.open(str(path)) as container:
        assert container.format.name == "mpeg"
    with VideoReader(path, backend=backend) as reader:
        assert reader.backend == "pyav" and len(reader) == 48
        assert [decode_index(f) for f in reader.get_frames(range(48))] == list(range(48))
        assert decode_index(reader.get_frames([7])[0]) == 7
        wanted = [30, 7, 8, 47, 0, 24, 23]  # random access, back and forth
        assert [decode_index(reader.get_frames([i])[0]) for i in wanted] == wanted
        assert [decode_index(f) for f in reader.get_frames([40, 2, 13, 13])] == [40, 2, 13, 13]


def test_variable_frame_rate_duration_and_frame_times_come_from_timestamps(odd_media):
    """A 5.4 s video was reported as 1.6 s (40 frames at the nominal 25 fps)."""
    path, times_ms = odd_media["vfr_mkv"], odd_media["vfr_times_ms"]
    index = probe(path)
    meta = index.metadata
    assert meta.num_frames == 40
    assert meta.duration == pytest.approx(5.4)  # last frame at 5.36 s, shown for 40 ms
    assert meta.fps == pytest.approx(40 / 5.4)
    np.testing.assert_allclose(index.frame_times(), np.asarray(times_ms) / 1000)
    with VideoReader(path) as reader:
        assert [decode_index(f) for f in reader.get_frames([0, 19, 20, 39])] == [0, 19, 20, 39]


def test_constant_frame_rate_keeps_the_nominal_rate(videos):
    index = probe(videos["mkv"])
    assert index.metadata.fps == 30.0 and index.metadata.duration == pytest.approx(3.0)
    np.testing.assert_allclose(index.frame_times(), np.arange(NUM_FRAMES) / 30.0, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_video_comes_back_upright(tmp_path, backend, degrees):
    """A display matrix (phones' portrait videos) turns the stored frames; they came back unrotated."""
    _backend_or_skip(backend)
    upright = index_pattern_frames(12, 64, 96)  # (T, 64, 96, 3): landscape, each frame its index
    stored = np.ascontiguousarray(np.rot90(upright, -degrees // 90, axes=(1, 2)))  # what the camera wrote
    path = tmp_path / f"rotated_{degrees}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width, stream.pix_fmt = *stored.shape[1:3], "yuv420p"
        stream.set_display_rotation(degrees)  # counter-clockwise, as VideoFrame.rotation reads it back
        for i, image in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    meta = probe(path).metadata
    assert meta.rotation == degrees % 360 and meta.display_size == (64, 96)
    assert (meta.height, meta.width) == stored.shape[1:3]
    with VideoReader(path, backend=backend) as reader:
        assert reader.backend == "pyav"  # decord and torchcodec would leave the frames as stored
        frames = reader.get_frames([0, 5, 11])
        assert frames.shape == (3, 64, 96, 3)
        assert [decode_index(f) for f in frames] == [0, 5, 11]
    with VideoReader(path, backend=backend, size=(32, 48)) as reader:
        frames = reader.get_frames([3, 7])
        assert frames.shape == (2, 32, 48, 3) and [decode_index(f) for f in frames] == [3, 7]


def test_avi_repro_of_the_one_frame_shift(tmp_path):
    """H.264 with B-frames in AVI came back one frame early, and some frames not at all."""
    path = write_video(tmp_path / "x.avi", index_pattern_frames(40, 32, 32), 10.0, gop=8)
    for backend in available_backends():
        with VideoReader(path, backend=backend) as reader:
            assert [decode_index(f) for f in reader.get_frames([0, 10, 20, 39])] == [0, 10, 20, 39]
            assert decode_index(reader.get_frames([19])[0]) == 19


def test_stream_index_flags(videos, odd_videos):
    """Which streams are counted (decode-order timestamps) and which have leading frames (open GOPs)."""
    flags = {
        name: (probe(path).decode_order, probe(path).leading_frames)
        for name, path in {**videos, **odd_videos}.items()
        if name != "raw_h264"
    }
    assert flags == {
        "long_gop": (False, False),
        "short_gop": (False, False),
        "mkv": (False, False),
        "avi": (True, False),  # x264's B-frames, AVI's packet-numbered timestamps
        "avi_open_gop": (True, False),  # counting cannot see leading frames: the decoder outputs them
        "avi_all_keyframes": (False, False),  # no B-frames: the made-up timestamps are in display order
        "avi_mpeg4": (False, True),  # FFmpeg's parser gives MPEG-4 Part 2 real timestamps
        "mp4_open_gop": (False, True),
        "mpegts": (False, False),
    }
    avi = probe(videos["avi"])
    assert avi.container == "avi" and avi.keyframes.tolist() == list(range(0, NUM_FRAMES, 12))
    assert np.all(np.diff(avi.pts) > 0) and len(avi.pts) == NUM_FRAMES


def test_avi_seeks_only_when_it_saves_work(videos):
    """Counting frames from a keyframe keeps seeking: no decode from the start for a frame at the end."""
    iterator = PyAVFrameIterator(videos["avi"])
    try:
        assert [i for i, _ in iterator.frames([85, 86, 87, 88])] == [85, 86, 87, 88]
        assert iterator.num_seeks == 1 and iterator.num_decoded <= 12
        assert [i for i, _ in iterator.frames([89])] == [89]
        assert iterator.num_seeks == 1
        assert [i for i, _ in iterator.frames([10, 11])] == [10, 11]  # behind: seek back to frame 0
        assert iterator.num_seeks == 2
    finally:
        iterator.close()


def test_open_gop_leading_frame_is_decoded_from_the_gop_before(odd_videos):
    """After a seek, a leading frame lacks its reference: it is decoded again from the previous keyframe."""
    keyframes = probe(odd_videos["avi_open_gop"]).keyframes.tolist()
    leading = keyframes[2]  # the keyframe is the k-th packet but frame k is a B-frame shown before it
    for target, seeks in [(leading, 2), (leading - 1, 1), (leading + 4, 1)]:
        iterator = PyAVFrameIterator(odd_videos["avi_open_gop"])
        try:
            (index, frame), *_ = iterator.frames([target])
            assert index == target and not frame.is_corrupt
            assert decode_index(frame.to_ndarray(format="rgb24")) == target
            assert iterator.num_seeks == seeks
        finally:
            iterator.close()


def test_counting_keeps_the_callers_codec_options(videos):
    iterator = PyAVFrameIterator(videos["avi"], codec_options={"flags2": "+export_mvs"})
    try:
        (_, frame), *_ = iterator.frames([13])  # a P/B-frame: it has motion vectors
        assert frame.side_data.get("MOTION_VECTORS") is not None
    finally:
        iterator.close()


def test_decord_frame_layout_bug_falls_back_to_pyav(tmp_path):
    """decord takes ``linesize / width`` for the channel count: at some widths it gives (H, W, 4 or 6)."""
    _backend_or_skip("decord")
    import decord

    path = write_video(tmp_path / "narrow.mp4", index_pattern_frames(20, 32, 32), 10.0, gop=8)
    decord_shape = decord.VideoReader(str(path), ctx=decord.cpu(0))[5].shape
    with VideoReader(path, backend="decord") as reader:
        assert reader.backend == "decord"  # an MP4 with closed GOPs: decord's to read
        frames = reader.get_frames([3, 17, 9])
        assert frames.shape == (3, 32, 32, 3)
        assert [decode_index(f) for f in frames] == [3, 17, 9]
        assert reader.backend == ("decord" if tuple(decord_shape) == (32, 32, 3) else "pyav")


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_at_decode(videos, backend):
    _backend_or_skip(backend)
    indices = [70, 3, 45]
    with VideoReader(videos["long_gop"], backend=backend, size=(48, 40)) as reader:
        small = reader.get_frames(indices)
    with VideoReader(videos["long_gop"], backend=backend) as reader:
        full = reader.get_frames(indices)
    assert small.shape == (3, 48, 40, 3)
    assert [decode_index(f) for f in small] == indices
    reference = torch.nn.functional.interpolate(
        full.permute(0, 3, 1, 2).float(), size=(48, 40), mode="bilinear", antialias=True
    ).permute(0, 2, 3, 1)
    assert (small.float() - reference).abs().mean() < 12.0  # same picture; filters and edges differ


def test_backends_agree_pixelwise(videos):
    backends = available_backends()
    if len(backends) < 2:
        pytest.skip(f"only {backends} available: nothing to compare")
    indices = [0, 17, 61, 89]
    outputs = []
    for backend in backends:
        with VideoReader(videos["long_gop"], backend=backend) as reader:
            outputs.append(reader.get_frames(indices).float())
    for other in outputs[1:]:
        assert (other - outputs[0]).abs().mean() < 2.0


def test_metadata(videos, tmp_path):
    meta = probe(videos["long_gop"]).metadata
    assert (meta.num_frames, meta.fps, meta.width, meta.height) == (NUM_FRAMES, 30.0, 64, 64)
    assert meta.duration == pytest.approx(3.0)
    assert meta.codec == "h264" and not meta.has_audio
    with av.open(str(videos["mkv"])) as container:
        assert (
            container.streams.video[0].frames == 0
        )  # the header says nothing: the count comes from the scan
    audio = np.zeros((1, 16000), dtype=np.float32)
    with_audio = write_video(tmp_path / "a.mp4", index_pattern_frames(25, 32, 32), 25.0, audio=audio)
    with VideoReader(with_audio) as reader:
        assert reader.metadata.has_audio and len(reader) == 25


def test_keyframes_follow_the_gop(videos):
    assert probe(videos["long_gop"]).keyframes.tolist() == [0, 60]
    assert probe(videos["short_gop"]).keyframes.tolist() == list(range(0, NUM_FRAMES, 12))


def test_seeks_only_when_it_saves_work(videos):
    iterator = PyAVFrameIterator(videos["long_gop"])
    try:
        # four frames at the end of a 90-frame video: jump to the keyframe at 60, never decode from 0
        assert [i for i, _ in iterator.frames([85, 86, 87, 88])] == [85, 86, 87, 88]
        assert iterator.num_seeks == 1 and iterator.num_decoded <= 30 + 4
        # a later frame in the same GOP continues without a seek; an earlier one seeks back
        assert [i for i, _ in iterator.frames([89])] == [89]
        assert iterator.num_seeks == 1
        assert [i for i, _ in iterator.frames([10, 20])] == [10, 20]
        assert iterator.num_seeks == 2
    finally:
        iterator.close()
    iterator = PyAVFrameIterator(videos["short_gop"])
    try:  # uniform sampling decodes no frame twice and skips whole GOPs
        wanted = [0, 30, 60, 89]
        assert [i for i, _ in iterator.frames(wanted)] == wanted
        assert iterator.num_decoded < 12 * len(wanted) < NUM_FRAMES
    finally:
        iterator.close()


def test_backend_choice(videos, monkeypatch):
    assert "pyav" in available_backends()
    monkeypatch.setenv("ZOO_VIDEO_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        VideoReader(videos["long_gop"])
    monkeypatch.delenv("ZOO_VIDEO_BACKEND")
    with VideoReader(videos["long_gop"]) as reader:
        assert reader.backend == "pyav"
    if "decord" in available_backends():
        monkeypatch.setenv("ZOO_VIDEO_BACKEND", "decord")
        with VideoReader(videos["long_gop"]) as reader:
            assert reader.backend == "decord"
            assert decode_index(reader.get_frames([33])[0]) == 33
        for video in ["avi", "raw_h264"]:  # decord would return other frames: PyAV reads them
            with VideoReader(videos[video]) as reader:
                assert reader.backend == "pyav"


@pytest.fixture
def no_torchcodec_cache():
    """The torchcodec probe is cached per process: clear it around a test that changes what it finds."""
    video._torchcodec_problem.cache_clear()
    yield
    video._torchcodec_problem.cache_clear()


@pytest.mark.parametrize("missing", ["package", "native_libraries"])
def test_torchcodec_is_probed_by_import_and_says_what_it_needs(
    videos, monkeypatch, no_torchcodec_cache, missing
):
    """Not gated on a CUDA torch: torchcodec decodes on CPU torch where it imports with FFmpeg's libraries."""
    if missing == "package":
        monkeypatch.setattr(video.importlib.util, "find_spec", lambda name: None)
    else:  # installed, but its native part does not load (no FFmpeg shared libraries): the import fails
        monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
        monkeypatch.setattr(video.importlib.util, "find_spec", lambda name: object())
    assert "torchcodec" not in available_backends()
    with pytest.raises(RuntimeError, match=r"pip install torchcodec.*FFmpeg"):
        VideoReader(videos["long_gop"], backend="torchcodec")


def test_torchcodec_probe_finds_a_working_install(videos):
    """Where torchcodec imports and decodes, it is offered whatever torch build this is (CPU here)."""
    problem = video._torchcodec_problem()
    if problem is not None:
        pytest.skip(f"torchcodec cannot run here: {problem}")
    assert "torchcodec" in available_backends()
    with VideoReader(videos["mkv"], backend="torchcodec") as reader:
        assert reader.backend == "torchcodec"
        assert [decode_index(f) for f in reader.get_frames([5, 61])] == [5, 61]


def test_out_of_range_indices(videos):
    with VideoReader(videos["long_gop"]) as reader:
        assert reader.get_frames([]).shape == (0, 64, 64, 3)
        with pytest.raises(IndexError, match="0, 90"):
            reader.get_frames([5, NUM_FRAMES])


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _bad_files(root: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {
        "zero_bytes": b"",
        "garbage": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text_named_mp4": b"this is not a video\n" * 50,
        "truncated": data[: len(data) // 3],
    }
    paths = {}
    for name, payload in files.items():
        paths[name] = root / f"{name}.mp4"
        paths[name].write_bytes(payload)
    paths["audio_only"] = _audio_only(root / "audio_only.m4a")
    paths["still_image"] = root / "image.mp4"
    with av.open(str(paths["still_image"]), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 32, 32, "rgb24"
        container.mux(
            stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24"))
        )
        container.mux(stream.encode())
    paths["missing"] = root / "does_not_exist.mp4"
    return paths


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreadable_files_raise_naming_the_path(videos, tmp_path, backend):
    _backend_or_skip(backend)
    for name, path in _bad_files(tmp_path, videos["long_gop"]).items():
        with pytest.raises(VideoDecodeError) as info, VideoReader(path, backend=backend) as reader:
            reader.get_frames(range(len(reader)))
        assert str(path) in str(info.value), name


def test_content_decides_the_container_not_the_extension(videos, tmp_path):
    renamed = tmp_path / "really_mp4.avi"
    renamed.write_bytes(videos["short_gop"].read_bytes())
    with VideoReader(renamed) as reader:
        assert [decode_index(f) for f in reader.get_frames([1, 50])] == [1, 50]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("video", ["long_gop", "mkv", "avi", "raw_h264"])
@pytest.mark.parametrize("kind", ["bytes", "bytesio", "file"])
def test_file_like_input_gives_the_frames_of_the_path(videos, backend, video, kind):
    _backend_or_skip(backend)
    path = videos[video]
    indices = _patterns(np.random.default_rng(1))["reversed_with_repeats"]
    with VideoReader(path, backend=backend) as reader:
        expected, expected_backend = reader.get_frames(indices), reader.backend
    with open(path, "rb") as file:
        source = {"bytes": path.read_bytes(), "bytesio": io.BytesIO(path.read_bytes()), "file": file}[kind]
        with VideoReader(source, backend=backend) as reader:
            assert reader.backend == expected_backend  # the same exactness rules as for the path
            assert reader.metadata.num_frames == NUM_FRAMES
            frames = reader.get_frames(indices)
            assert np.array_equal(reader.frame_times(), probe(path).frame_times())
    assert torch.equal(frames, expected)
    assert [decode_index(f) for f in frames] == indices


def test_file_like_input_errors_name_the_source(videos):
    with pytest.raises(VideoDecodeError, match="empty file"):
        VideoReader(b"")
    garbage = io.BytesIO(b"not a video at all" * 100)
    garbage.name = "shard-0001.tar/clip.mp4"
    with pytest.raises(VideoDecodeError, match=re.escape("shard-0001.tar/clip.mp4")):
        VideoReader(garbage)
    with open(videos["long_gop"], encoding="latin-1") as text_file, pytest.raises(TypeError, match="binary"):
        VideoReader(text_file)
