"""Write real H.264 mp4 files (optionally with an AAC track) and frames that carry their own index.

Used by SynthMotion, by the tests (tiny videos made in a tmp dir) and by the decoding benchmarks.
"""

from __future__ import annotations

import os
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

INDEX_GRID = 4  # the index pattern is a 4x4 grid of black/white cells: 16 bits, MSB first, row-major
_AAC_FRAME_SIZE = 1024


def _as_uint8_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even height and width; got {frames.shape[1]}x{frames.shape[2]}")
    return frames


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | torch.Tensor,
    fps: float = 25.0,
    *,
    gop: int = 12,
    bframes: int = 2,
    crf: int = 18,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> Path:
    """Encode ``frames`` (uint8 ``(T, H, W, 3)`` RGB) as H.264 (libx264, yuv420p, constant frame rate).

    ``gop`` is the keyframe interval (scene-cut detection off, so keyframes are exactly every ``gop`` frames);
    ``bframes`` the number of consecutive B-frames. ``audio``: float32 ``(channels, samples)`` in [-1, 1],
    encoded as AAC in the same file. The file appears atomically (temp name in the same folder, then rename).
    """
    path = Path(path)
    frames = _as_uint8_frames(frames)
    num_frames, height, width, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1  # ffmpeg's automatic threads make x264's output vary
            stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:threads=1:mbtree=0",
            }
            audio_stream = None
            if audio is not None:
                audio = np.ascontiguousarray(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
                if audio.ndim != 2 or audio.shape[0] not in (1, 2):
                    raise ValueError(
                        f"audio must be float32 (channels in {{1, 2}}, samples); got {audio.shape}"
                    )
                audio_stream = container.add_stream("aac", rate=sample_rate)
                audio_stream.layout = "mono" if audio.shape[0] == 1 else "stereo"
                audio_stream.options = {"aac_coder": "fast"}
            for i in range(num_frames):
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
            if audio_stream is not None:
                layout = audio_stream.layout.name
                for start in range(0, audio.shape[1], _AAC_FRAME_SIZE):
                    chunk = np.ascontiguousarray(audio[:, start : start + _AAC_FRAME_SIZE])
                    aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                    aframe.sample_rate, aframe.pts = sample_rate, start
                    aframe.time_base = Fraction(1, sample_rate)
                    container.mux(audio_stream.encode(aframe))
                container.mux(audio_stream.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def index_pattern_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` uint8 whose content is their own index, as a 4x4 grid of black/white cells.

    Each cell is ``H/4 x W/4`` pixels (>= 8x8 for 32x32 frames), so the code survives lossy compression
    and resizing. Up to 2**16 frames.
    """
    if num_frames > 2 ** (INDEX_GRID * INDEX_GRID):
        raise ValueError(f"index pattern holds at most {2 ** (INDEX_GRID * INDEX_GRID)} frames")
    if min(height, width) < 8 * INDEX_GRID:
        raise ValueError(f"index pattern needs frames of at least {8 * INDEX_GRID} px a side")
    shifts = np.arange(INDEX_GRID * INDEX_GRID - 1, -1, -1)
    bits = (np.arange(num_frames)[:, None] >> shifts) & 1  # (T, 16), MSB first
    cells = bits.reshape(num_frames, INDEX_GRID, INDEX_GRID).astype(np.uint8) * 255
    rows = np.minimum(np.arange(height) * INDEX_GRID // height, INDEX_GRID - 1)
    cols = np.minimum(np.arange(width) * INDEX_GRID // width, INDEX_GRID - 1)
    frames = cells[:, rows][:, :, cols]  # (T, H, W)
    return np.repeat(frames[..., None], 3, axis=-1)


def decode_index(frame: np.ndarray | torch.Tensor) -> int:
    """Read back the index drawn by :func:`index_pattern_frames` from one ``(H, W, C)`` frame."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    gray = np.asarray(frame, dtype=np.float32).mean(axis=-1)  # (H, W)
    height, width = gray.shape
    index = 0
    for r in range(INDEX_GRID):
        for c in range(INDEX_GRID):
            # centre half of the cell: far from edges where compression and resizing blur
            y0, y1 = (4 * r + 1) * height // (4 * INDEX_GRID), (4 * r + 3) * height // (4 * INDEX_GRID)
            x0, x1 = (4 * c + 1) * width // (4 * INDEX_GRID), (4 * c + 3) * width // (4 * INDEX_GRID)
            index = (index << 1) | int(gray[y0:y1, x0:x1].mean() > 127.5)
    return index
