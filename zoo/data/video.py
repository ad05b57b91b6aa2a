"""Frame-accurate video decoding behind one interface: ``VideoReader(path).get_frames(indices)``.

The source is a path, or the encoded bytes themselves (``bytes``, ``io.BytesIO``, any binary file object,
e.g. a member of a tar shard being streamed): every backend reads both, and a file object is read whole
once, from its current position (:class:`InMemoryVideo`).

Backends: ``"pyav"`` (default, always installed; also serves audio and motion vectors), ``"decord"`` (the
``decord`` import name, installed by the ``decord2`` package) and ``"torchcodec"`` (the ``torchcodec``
package, CPU or CUDA torch, with the system's FFmpeg shared libraries: it is available where it imports and
opens a video). Choose by argument or with the ``ZOO_VIDEO_BACKEND`` variable. decord and torchcodec read
only the files they read frame-exactly (MP4/MOV, Matroska/WebM, FLV with closed GOPs, upright); PyAV
reads the others.

Metadata never trusts the container header: the video stream's packets are scanned once per file (no
decoding but the first frame; ~10 ms for a 10 s clip) to get the exact frame count, every frame's timestamp
and the keyframes. The scan is cached per process, keyed by path, size and modification time. Durations and
frame times come from the timestamps, so variable-frame-rate files (phone videos, screen recordings) have
their true duration; ``fps`` is then the average rate.

MPEG program streams (``.mpg``, ``.vob``) are not trusted: their demuxer makes up the timestamps of frames
that share a PES packet, and with B-frames these come out duplicated or shifted. Their frames are counted
by a full decoding pass and read by counting the decoder's output from the start of the file.

Rotated videos (a display matrix, as phones write): frames come back upright, rotated as a player shows
them; :attr:`VideoMetadata.rotation` says by how much.

Frames are identified by their presentation timestamp where the container stores one. AVI stores none: it
numbers its packets in decode order, and for H.264 FFmpeg makes up ``pts = dts + 1``. With B-frames these
stamps do not follow the display order (the decoder hands each frame the stamp of the packet that carried
it), so for such streams a frame's index is counted from the keyframe decoding started at (see
:attr:`StreamIndex.decode_order`). MPEG-4 Part 2 (Xvid/DivX) and MPEG-2 in AVI get real presentation
timestamps from FFmpeg's parsers and are identified by them.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch

BACKENDS = ("pyav", "decord", "torchcodec")
VideoSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO
# containers in which decord's and torchcodec's seeks by pts land where they expect (not AVI:
# packet-numbered; not MPEG-TS/PS)
_SEEKABLE_CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "flv")
# demuxers whose timestamps are made up for frames sharing a PES packet (wrong with B-frames): MPEG-PS
_UNTRUSTED_TIMESTAMPS = ("mpeg", "vob", "mpegvideo")
_TORCHCODEC_NEEDS = (
    "pip install torchcodec, and FFmpeg's shared libraries (libavcodec & co.) in a version that torchcodec "
    "supports (FFmpeg 4-7; newer torchcodec releases also 8), e.g. apt-get install ffmpeg"
)


class VideoDecodeError(RuntimeError):
    """A media file that cannot be read (missing, empty, corrupt, not a video); the message names the path."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        super().__init__(f"cannot decode {self.path!r}: {reason}")


class InMemoryVideo:
    """Encoded video bytes held in memory, named for error messages (``str()`` gives the name).

    Args:
        data: the file's bytes.
        name: what messages call it (a shard member's name, ``"<bytes>"``).
    """

    def __init__(self, data: bytes, name: str = "<bytes>"):
        self.data, self.name = bytes(data), str(name)
        self._index: StreamIndex | None = None  # the scan, done once per object

    def open(self) -> io.BytesIO:
        """A fresh file object over the bytes."""
        return io.BytesIO(self.data)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"InMemoryVideo({self.name!r}, {len(self.data)} bytes)"


Source = Path | InMemoryVideo  # what the functions below read: a path, or bytes in memory


def as_source(source: VideoSource | InMemoryVideo) -> Source:
    """A path, or the bytes of ``bytes`` / ``BytesIO`` / a binary file object (read from where it stands)."""
    if isinstance(source, InMemoryVideo):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return InMemoryVideo(bytes(source))
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"a video file object must be opened in binary mode; got {type(data).__name__}")
        return InMemoryVideo(data, str(getattr(source, "name", "<stream>")))
    return Path(source)


def _av_input(source: Source) -> str | io.BytesIO:
    return source.open() if isinstance(source, InMemoryVideo) else str(source)


@dataclass(frozen=True)
class VideoMetadata:
    fps: float  # the nominal rate; for variable-frame-rate files the average, num_frames / duration
    num_frames: int  # counted from the stream's packets, not read from the header
    duration: float  # seconds, from the first frame's timestamp to the end of the last frame
    width: int  # as stored; see display_size for the frames returned
    height: int
    has_audio: bool
    codec: str
    rotation: int = 0  # degrees counter-clockwise (0, 90, 180, 270) that frames are turned to stand upright

    @property
    def display_size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames as returned: upright, as a player shows them."""
        return (self.width, self.height) if self.rotation % 180 else (self.height, self.width)


@dataclass(frozen=True)
class StreamIndex:
    """What the packet scan of a file found (see :func:`probe`)."""

    metadata: VideoMetadata
    # (N,) int64 sorted packet timestamps, one per frame, in display order unless decode_order; None: none
    pts: np.ndarray | None
    keyframes: np.ndarray  # (K,) sorted frame indices of keyframes (always holds 0)
    # True when the timestamps only number the packets in decode order although the codec reorders frames
    # (H.264 with B-frames in AVI): ``pts[i]`` then belongs to the i-th packet, not the i-th frame shown, and
    # frames are identified by counting the decoder's output from a keyframe: decoding from the keyframe in
    # packet k outputs frame k first (with an open GOP, a leading frame that the decoder is told to output)
    decode_order: bool = False
    # True when some keyframe is shown at another position than it is decoded at: frames decoded after it
    # are shown before it (open GOPs, e.g. FFmpeg's MPEG-2 and MPEG-4 Part 2 encoders with B-frames)
    leading_frames: bool = False
    container: str = ""  # FFmpeg's demuxer name: "avi", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2", ...
    # (N,) float64 seconds of each frame from the first one, in display order (from the timestamps)
    times: np.ndarray | None = None

    def frame_times(self) -> np.ndarray:
        """``(N,)`` seconds at which each frame is shown, from the first frame (0.0)."""
        if self.times is not None:
            return self.times
        return np.arange(self.metadata.num_frames, dtype=np.float64) / self.metadata.fps


def _tiny_video() -> bytes:
    """Two 16x16 frames of MPEG-4 Part 2 in MP4, made in memory: what a decoder is tried on."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


@functools.cache
def _torchcodec_problem() -> str | None:
    """Why torchcodec cannot decode here (None when it can): it is imported and tried on a tiny video."""
    if importlib.util.find_spec("torchcodec") is None:
        return "torchcodec is not installed"
    try:  # without FFmpeg's shared libraries the import itself fails (OSError, RuntimeError)
        from torchcodec.decoders import VideoDecoder

        VideoDecoder(_tiny_video(), seek_mode="exact").get_frames_at([0, 1])
    except Exception as err:  # whatever a missing or mismatched native library raises
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"torchcodec did not load or decode ({reason})"
    return None


def available_backends() -> list[str]:
    """Backends that can run here, in order of preference after the default."""
    names = ["pyav"]
    if importlib.util.find_spec("decord") is not None:
        names.append("decord")
    if _torchcodec_problem() is None:
        names.append("torchcodec")
    return names


def _unavailable_reason(backend: str) -> str:
    if backend == "decord":
        return "the decord backend needs the decord2 package: pip install 'zoo[video]'"
    return f"the torchcodec backend is unavailable: {_torchcodec_problem()}; it needs {_TORCHCODEC_NEEDS}"


def _open_container(path: Source) -> av.container.InputContainer:
    if isinstance(path, InMemoryVideo):
        if not path.data:
            raise VideoDecodeError(path, "empty file")
    elif not path.is_file():
        raise VideoDecodeError(path, "no such file")
    elif path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file")
    try:
        container = av.open(_av_input(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(path, f"not a readable media file ({err})") from err
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream")
    if container.format.name == "image2" or container.format.name.endswith(
        "_pipe"
    ):  # png_pipe, jpeg_pipe, ...
        container.close()
        raise VideoDecodeError(path, f"a still image ({container.format.name}), not a video")
    return container


def _upright_turns(frame: av.VideoFrame) -> int:
    """Quarter turns counter-clockwise that stand ``frame`` upright, from its display matrix (0 without one)."""
    degrees = getattr(frame, "rotation", 0) or 0  # counter-clockwise, in [-180, 180]
    return round(degrees / 90) % 4


def _first_frame_turns(packet: av.Packet) -> int | None:
    """:func:`_upright_turns` of the first frame ``packet`` gives the decoder (None: no frame yet, or none)."""
    try:
        return next((_upright_turns(frame) for frame in packet.decode()), None)
    except av.FFmpegError:  # a bad first packet; the scan and later reads judge the file
        return None


def _scan(path: Source) -> StreamIndex:
    """Count frames and collect timestamps and keyframes by demuxing (not decoding) the video stream.

    Only the first frame is decoded, for its display matrix. Where the timestamps cannot be trusted (none,
    MPEG-PS, repeated ones), frames are counted by decoding the whole stream.
    """
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "SLICE"  # frame threads would hold the first frame back
        pts, durations, keyframe_pts, keyframe_packets, has_pts = [], [], [], [], True
        turns = None
        try:
            for packet in container.demux(stream):
                if turns is None:
                    turns = _first_frame_turns(packet)
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    has_pts = False
                    continue
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
                    keyframe_packets.append(len(pts))
                pts.append(packet.pts)
                durations.append(packet.duration or 0)
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"demuxing failed ({err})") from err
        packet_pts = np.asarray(pts, dtype=np.int64)  # decode order
        trusted = (
            has_pts
            and container.format.name not in _UNTRUSTED_TIMESTAMPS
            and len(np.unique(packet_pts)) == len(packet_pts)
        )
        decode_order = leading_frames = False
        times = None
        rate = stream.average_rate or stream.guessed_rate
        if trusted:
            # a codec that reorders frames yet timestamps that never go back: they number the packets
            decode_order = bool(stream.codec_context.has_b_frames) and bool(np.all(np.diff(packet_pts) > 0))
            order = np.argsort(packet_pts, kind="stable")
            pts = packet_pts[order]  # display order, or unchanged packet order if decode_order
            keyframes = np.searchsorted(pts, np.asarray(keyframe_pts, dtype=np.int64))
            leading_frames = not np.array_equal(keyframes, keyframe_packets)
            num_frames = len(pts)
            if not decode_order and num_frames:
                times = (pts - pts[0]).astype(np.float64) * float(stream.time_base)
                last = float(durations[order[-1]] * stream.time_base)
        else:  # no timestamps to trust (raw streams, MPEG-PS, some AVI): count by decoding, read sequentially
            num_frames = _count_by_decoding(path)
            pts, keyframes = None, np.zeros(0, dtype=np.int64)
        if num_frames == 0:
            raise VideoDecodeError(path, "video stream has no frames")
        keyframes = np.union1d(keyframes, [0]).astype(np.int64)
        if times is not None and num_frames > 1:
            # the duration runs to the end of the last frame: its packet's duration, else a typical interval
            last = last if last > 0 else float(np.median(np.diff(times)))
            duration = float(times[-1]) + last
            nominal = float(rate) if rate else 0.0
            constant = nominal > 0 and abs(duration - num_frames / nominal) < 1.5 / nominal
            fps = nominal if constant else num_frames / duration  # variable frame rate: the average
            duration = num_frames / fps if constant else duration
        elif rate:
            fps = float(rate)
            duration = num_frames / fps
        else:
            raise VideoDecodeError(path, "unknown frame rate")
        metadata = VideoMetadata(
            fps=fps,
            num_frames=num_frames,
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
            rotation=90 * (turns or 0),
        )
        return StreamIndex(
            metadata, pts, keyframes, decode_order, leading_frames, container.format.name, times
        )
    finally:
        container.close()


def _count_by_decoding(path: Source) -> int:
    with av.open(_av_input(path)) as container:
        try:
            return sum(1 for _ in container.decode(video=0))
        except av.FFmpegError as err:
            raise VideoDecodeError(path, f"decoding failed ({err})") from err


@functools.lru_cache(maxsize=256)
def _cached_scan(path: str, size: int, mtime_ns: int) -> StreamIndex:
    return _scan(Path(path))


def probe(path: VideoSource | InMemoryVideo) -> StreamIndex:
    """Metadata, frame timestamps and keyframes of ``path`` without decoding (cached per process).

    Bytes in memory are scanned once per :class:`InMemoryVideo` (pass the same object to reuse the scan).
    Raises :class:`VideoDecodeError` for unreadable files.
    """
    path = as_source(path)
    if isinstance(path, InMemoryVideo):
        if path._index is None:
            path._index = _scan(path)
        return path._index
    try:
        stat = path.stat()
    except OSError as err:
        raise VideoDecodeError(path, "no such file") from err
    return _cached_scan(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


class PyAVFrameIterator:
    """Decodes chosen frames of a video stream, seeking only when that saves work.

    It seeks when the target is behind the decoder, or when a keyframe lies between the decoder's position
    and the target (decoding up to that keyframe would be wasted); otherwise it decodes forward, telling the
    decoder to skip the non-reference frames (most B-frames) it was not asked for. Frames are identified by
    their presentation timestamp, so B-frame reordering and seek imprecision cannot shift them. Streams whose
    timestamps do not tell the display order (:attr:`StreamIndex.decode_order`, no timestamps at all) are
    identified by counting the decoder's output from the keyframe the demuxer landed on instead; nothing is
    skipped there, and the decoder also outputs the leading frames of an open GOP (flagged corrupt after a
    seek) so that the count stays exact; a target among them is decoded again from the keyframe before.
    """

    def __init__(
        self, path: VideoSource | InMemoryVideo, num_threads: int = 1, codec_options: dict | None = None
    ):
        self.path = as_source(path)
        self.index = probe(self.path)
        self._counting = self.index.pts is None or self.index.decode_order
        self._num_threads, self._codec_options = num_threads, dict(codec_options or {})
        if self.index.decode_order:  # keep frames the decoder would drop after a seek: each one counts
            self._codec_options["flags2"] = self._codec_options.get("flags2", "") + "+showall"
        self._container = _open_container(self.path)
        self._stream = self._container.streams.video[0]
        self._configure_decoder()
        self._frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._position = -1  # index of the last frame produced by self._frames
        self._run_start = 0  # index of the keyframe self._frames started from
        self._wanted_pts: set[int] = set()
        self._last_wanted_pts = -(2**63)
        self.num_seeks = 0  # how often decoding restarted from a keyframe
        self.num_decoded = 0  # frames the decoder produced (wanted or not)

    def _configure_decoder(self) -> None:
        context = self._stream.codec_context
        context.thread_count = self._num_threads
        context.thread_type = "AUTO" if self._num_threads > 1 else "SLICE"
        if self._codec_options:
            context.options = self._codec_options

    def _reopen(self) -> Iterator[av.Packet]:
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = self._container.streams.video[0]
        self._configure_decoder()
        return self._container.demux(self._stream)

    def _packets_from(self, keyframe: int) -> tuple[Iterator[av.Packet], int]:
        """The stream's packets from ``keyframe`` (or one before it) on, and the index of the frame they start at.

        Demuxers index keyframes by pts (Matroska) or by dts (AVI, MP4), so a seek to a keyframe's pts can land
        on a later one (AVI's made-up ``pts = dts + 1`` with a keyframe in every packet): the first packet
        tells where it landed, and a late landing seeks to the keyframe before instead. Counting needs a known
        keyframe to start from: failing that, decoding starts over from the beginning of the file.
        """
        pts_table, keyframes = self.index.pts, self.index.keyframes
        if pts_table is None:  # no timestamps, no seeking
            return self._reopen(), 0
        previous = int(keyframes[max(int(np.searchsorted(keyframes, keyframe)) - 1, 0)])
        for start in dict.fromkeys([keyframe, previous]):
            self._container.seek(int(pts_table[start]), stream=self._stream, backward=True, any_frame=False)
            self._stream.codec_context.flush_buffers()
            packets = self._container.demux(self._stream)
            first = next(packets, None)
            if first is None:
                break
            landed = len(pts_table) if first.pts is None else int(np.searchsorted(pts_table, first.pts))
            if landed == len(pts_table) or pts_table[landed] != first.pts:  # a packet the scan did not list
                if self._counting:
                    break
                return itertools.chain([first], packets), start  # pts mode: frames identify themselves
            if landed <= keyframe and (landed in keyframes or not self._counting):
                return itertools.chain([first], packets), landed
        return self._reopen(), 0

    def _decode_from(self, keyframe: int) -> Iterator[tuple[int, av.VideoFrame]]:
        pts_table = self.index.pts
        self.num_seeks += 1
        packets, counter = self._packets_from(keyframe)
        self._run_start = counter
        context = self._stream.codec_context
        for packet in packets:
            if not self._counting and packet.pts is not None:
                # frames nothing refers to and nobody asked for are not decoded; only those before the
                # last wanted frame, since the decoder reads ahead and a later call may want the next ones
                skip = packet.pts < self._last_wanted_pts and packet.pts not in self._wanted_pts
                context.skip_frame = "NONREF" if skip else "DEFAULT"
            for frame in packet.decode():
                self.num_decoded += 1
                if self._counting:  # the decoder outputs frames in display order
                    index, counter = counter, counter + 1
                else:
                    pts = frame.pts if frame.pts is not None else frame.dts
                    if pts is None:
                        continue
                    index = int(np.searchsorted(pts_table, pts))
                    if index >= len(pts_table) or pts_table[index] != pts:
                        continue  # a frame the scan did not list (discarded by an edit list)
                yield index, frame

    def _start(self, keyframe: int) -> None:
        self._frames, self._position = self._decode_from(keyframe), keyframe - 1

    def _advance_to(self, target: int) -> av.VideoFrame:
        for index, frame in self._frames:
            self._position = index
            if index == target:
                return frame
            if index > target:
                raise VideoDecodeError(self.path, f"frame {target} was not produced by the decoder")
        self._frames = None
        raise VideoDecodeError(self.path, f"stream ended before frame {target}")

    def _frame_at(self, target: int) -> av.VideoFrame:
        keyframes = self.index.keyframes
        keyframe = int(keyframes[np.searchsorted(keyframes, target, side="right") - 1])
        if self._frames is None or target <= self._position or keyframe > self._position + 1:
            self._start(keyframe)
        frame = self._advance_to(target)
        if self.index.decode_order and frame.is_corrupt and self._run_start > 0:
            # a leading frame of an open GOP, decoded after a seek without its reference in the GOP before:
            # decode it again from the previous keyframe, through this one
            self._start(int(keyframes[np.searchsorted(keyframes, self._run_start) - 1]))
            frame = self._advance_to(target)
        return frame

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(index, frame)`` for each of the sorted unique ``indices``."""
        if not self._counting and len(indices):
            self._wanted_pts = set(self.index.pts[np.asarray(indices, dtype=np.int64)].tolist())
            self._last_wanted_pts = max(self._wanted_pts)
        try:
            for target in indices:
                yield target, self._frame_at(target)
        except av.FFmpegError as err:
            self._frames = None
            raise VideoDecodeError(self.path, f"decoding failed ({err})") from err

    def close(self) -> None:
        self._frames = None
        self._container.close()


class RGBConverter:
    """Frame -> uint8 ``(H, W, 3)`` RGB, optionally resized (bilinear).

    One reformatter is kept for all frames: ``VideoFrame.to_ndarray`` builds a new swscale context per
    frame, which costs milliseconds, far more than the conversion itself.
    """

    def __init__(self, size: tuple[int, int] | None = None):
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._size = size

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        height, width = self._size or (frame.height, frame.width)
        rgb = self._reformatter.reformat(
            frame, width=width, height=height, format="rgb24", interpolation="BILINEAR"
        )
        return rgb.to_ndarray()


def _check_indices(indices: Sequence[int], num_frames: int, path: Source) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= num_frames):
        raise IndexError(
            f"frame indices must be in [0, {num_frames}) for {str(path)!r}; got {indices.tolist()}"
        )
    return indices


class _PyAVBackend:
    def __init__(self, path: Source, size: tuple[int, int] | None, num_threads: int):
        self._iterator = PyAVFrameIterator(path, num_threads=num_threads)
        self.metadata = self._iterator.index.metadata
        self._turns = self.metadata.rotation // 90  # quarter turns counter-clockwise to stand upright
        self._size = size or self.metadata.display_size
        height, width = self._size
        self._to_rgb = RGBConverter((width, height) if self._turns % 2 else (height, width))  # as stored

    def decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self._size, 3), dtype=np.uint8)
        for i, (_, frame) in enumerate(self._iterator.frames(indices.tolist())):
            out[i] = np.rot90(self._to_rgb(frame), self._turns)
        return out

    def close(self) -> None:
        self._iterator.close()


class _DecordLayoutError(VideoDecodeError):
    """decord gave frames of the wrong shape: it takes ``linesize / width`` as the channel count, so rows
    padded by FFmpeg (at some widths, e.g. 32, 48, 96 or 144 px) come out as 4 or 6 "channels" or fail to copy.
    """


class _DecordBackend:
    def __init__(self, path: Source, size: tuple[int, int] | None, num_threads: int):
        import decord

        self.metadata = probe(path).metadata
        height, width = size or (-1, -1)
        try:
            self._reader = decord.VideoReader(
                _av_input(path), ctx=decord.cpu(0), width=width, height=height, num_threads=num_threads
            )
        except Exception as err:  # decord raises its own error types (DECORDError, RuntimeError)
            raise VideoDecodeError(path, f"decord could not open it ({err})") from err
        self._path = path
        self._frame_shape = (*(size or self.metadata.display_size), 3)

    def _layout_error(self, shape: tuple[int, ...]) -> _DecordLayoutError:
        return _DecordLayoutError(self._path, f"decord gave frames of shape {shape}, not {self._frame_shape}")

    def decode_sorted(self, indices: np.ndarray) -> np.ndarray:
        try:
            frames = self._reader.get_batch(indices.tolist()).asnumpy()
        except Exception as err:
            try:  # the batch copy fails on a badly shaped frame; one frame alone shows the shape
                shape = tuple(self._reader[int(indices[0])].shape)
            except Exception:
                shape = self._frame_shape
            if shape != self._frame_shape:
                raise self._layout_error(shape) from err
            raise VideoDecodeError(self._path, f"decord failed ({err})") from err
        if frames.shape[1:] != self._frame_shape:
            raise self._layout_error(frames.shape[1:])
        return frames

    def close(self) -> None:
        del self._reader


def _reads_exactly(index: StreamIndex) -> bool:
    """Whether decord and torchcodec return the frames asked for, upright: they take a keyframe's packet
    position for its display position (wrong with leading frames), seek by pts (wrong where the demuxer seeks
    otherwise: AVI, MPEG-TS, MPEG-PS; torchcodec is off by two there) and leave rotated frames as stored."""
    exact_timestamps = index.pts is not None and not index.decode_order and not index.leading_frames
    upright = index.metadata.rotation == 0
    return exact_timestamps and upright and index.container in _SEEKABLE_CONTAINERS


class _TorchCodecBackend:
    def __init__(self, path: Source, size: tuple[int, int] | None, num_threads: int):
        from torchcodec.decoders import VideoDecoder

        self.metadata = probe(path).metadata
        try:
            self._decoder = VideoDecoder(
                path.data if isinstance(path, InMemoryVideo) else str(path),
                seek_mode="exact",
                num_ffmpeg_threads=num_threads,
                dimension_order="NHWC",
            )
        except Exception as err:
            raise VideoDecodeError(path, f"torchcodec could not open it ({err})") from err
        self._size, self._path = size, path

    def decode_sorted(self, indices: np.ndarray) -> np.ndarray | torch.Tensor:
        try:
            frames = self._decoder.get_frames_at(indices.tolist()).data  # (T, H, W, C) uint8
        except Exception as err:
            raise VideoDecodeError(self._path, f"torchcodec failed ({err})") from err
        if self._size is not None:
            frames = torch.nn.functional.interpolate(
                frames.permute(0, 3, 1, 2).float(), size=self._size, mode="bilinear", antialias=True
            )
            frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames

    def close(self) -> None:
        del self._decoder


_BACKEND_CLASSES: dict[str, Callable] = {
    "pyav": _PyAVBackend,
    "decord": _DecordBackend,
    "torchcodec": _TorchCodecBackend,
}


class VideoReader:
    """Read chosen frames of a video, exactly.

    Args:
        path: the video file, or its bytes (``bytes``, ``io.BytesIO``, a binary file object).
        backend: ``"pyav"``, ``"decord"`` or ``"torchcodec"``; default ``$ZOO_VIDEO_BACKEND`` or ``"pyav"``.
        size: ``(height, width)`` of the upright frames to resize to while decoding (bilinear), or None for
            :attr:`VideoMetadata.display_size`.
        num_threads: decoder threads (1 suits data-loader workers).

    Raises :class:`VideoDecodeError` (naming the path) for missing, empty, corrupt or non-video files.
    ``.backend`` tells which backend reads the file. PyAV reads it whatever was asked where decord or
    torchcodec return other frames than those asked: outside MP4/MOV, Matroska/WebM and FLV (AVI, MPEG-TS,
    MPEG-PS, raw ``.h264``), with open GOPs (keyframes shown after frames decoded later), rotated videos, and
    where decord lays frames out with a wrong shape (at some widths; found on the first read, which PyAV then
    redoes). Frames come back upright (see :attr:`VideoMetadata.rotation`).
    """

    def __init__(
        self,
        path: VideoSource | InMemoryVideo,
        backend: str | None = None,
        size: tuple[int, int] | None = None,
        num_threads: int = 1,
    ):
        self.path = as_source(path)
        self.backend = backend or os.environ.get("ZOO_VIDEO_BACKEND") or "pyav"
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown video backend {self.backend!r}; choose from {BACKENDS}")
        if self.backend not in available_backends():
            raise RuntimeError(_unavailable_reason(self.backend))
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self._num_threads = num_threads
        if self.backend != "pyav" and not _reads_exactly(probe(self.path)):
            self.backend = "pyav"
        self._impl = _BACKEND_CLASSES[self.backend](self.path, self.size, num_threads)

    @property
    def metadata(self) -> VideoMetadata:
        return self._impl.metadata

    def __len__(self) -> int:
        return self.metadata.num_frames

    def frame_times(self) -> np.ndarray:
        """``(N,)`` seconds at which each frame is shown, from the first frame (see :meth:`StreamIndex.frame_times`)."""
        return probe(self.path).frame_times()

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``(T, H, W, C)`` RGB."""
        indices = _check_indices(indices, self.metadata.num_frames, self.path)
        if indices.size == 0:
            return torch.empty((0, *(self.size or self.metadata.display_size), 3), dtype=torch.uint8)
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            frames = self._impl.decode_sorted(unique)  # (U, H, W, C)
        except _DecordLayoutError:
            self._impl.close()
            self.backend, self._impl = "pyav", _PyAVBackend(self.path, self.size, self._num_threads)
            frames = self._impl.decode_sorted(unique)
        frames = torch.as_tensor(frames)
        if len(unique) != len(indices) or not np.array_equal(unique, indices):
            frames = frames[torch.from_numpy(inverse.reshape(-1))]
        return frames

    def close(self) -> None:
        self._impl.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
