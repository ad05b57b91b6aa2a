"""Compressed-domain signals of H.264 video: motion vectors and keyframes, read with PyAV.

Motion-vector convention (what :func:`read_motion_vectors` returns):

* one ``(dx, dy)`` per ``block x block`` pixel cell of the output frame (block 8 by default, or 4);
  grid ``(ceil(H / block), ceil(W / block))``;
* in pixels of the output size (vectors are rescaled with the frame when ``size`` is given), from the
  reference frame to the current frame, i.e. ``dst - src`` = ``-motion_x / motion_scale`` in FFmpeg's side
  data, so content moving right gives ``dx > 0``; quarter-pel precision is kept (``motion_scale``);
* always forward in time: a block predicted from a *future* reference has its vector negated; a cell with
  vectors from the past reference uses those (averaged when several partitions fall in it), otherwise
  the negated future ones;
* the magnitude spans the reference distance, which H.264 side data do not state: with B-frames a P-frame's
  vectors cover ``bframes + 1`` frames. Encode with ``bframes=0`` (as CoViAR-style pipelines do) for
  per-frame motion;
* frames without vectors (I-frames, all-intra frames) are zeros, with ``has_motion`` False; cells without a
  vector (intra blocks) are zeros.

:func:`replay_geometry` gives a motion-vector clip the crop, resize and flip that a clip's transform drew,
so that its cells line up with the clip's pixels (and with its keyframe, which goes through the same
transform).
"""

from __future__ import annotations

import math

import av
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from zoo.data.transforms import (
    CenterCrop,
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ShortSideScale,
    VideoTransform,
)
from zoo.data.video import (
    PyAVFrameIterator,
    RGBConverter,
    VideoDecodeError,
    VideoSource,
    _open_container,
    as_source,
    probe,
)


def _rasterise(
    vectors: np.ndarray, grid: tuple[int, int], block: int, scale: tuple[float, float]
) -> np.ndarray:
    """Dense ``(2, gh, gw)`` block grid from FFmpeg's structured motion-vector array (vectorised)."""
    grid_h, grid_w = grid
    scale_y, scale_x = scale
    out = np.zeros((2, grid_h, grid_w), dtype=np.float32)
    if len(vectors) == 0:
        return out
    dst_x, dst_y = vectors["dst_x"].astype(np.float64), vectors["dst_y"].astype(np.float64)
    half_w, half_h = vectors["w"] / 2.0, vectors["h"] / 2.0
    motion_scale = vectors["motion_scale"].astype(np.float64)
    from_past = vectors["source"] < 0
    sign = np.where(from_past, -1.0, 1.0)  # dst - src for past references; its negation for future ones
    dx = sign * vectors["motion_x"] / motion_scale * scale_x
    dy = sign * vectors["motion_y"] / motion_scale * scale_y
    # cells covered by each partition (dst is the partition's centre)
    eps = 1e-6
    x0 = np.clip(np.floor((dst_x - half_w) * scale_x / block + eps), 0, grid_w - 1).astype(np.int64)
    x1 = np.clip(np.ceil((dst_x + half_w) * scale_x / block - eps), x0 + 1, grid_w).astype(np.int64)
    y0 = np.clip(np.floor((dst_y - half_h) * scale_y / block + eps), 0, grid_h - 1).astype(np.int64)
    y1 = np.clip(np.ceil((dst_y + half_h) * scale_y / block - eps), y0 + 1, grid_h).astype(np.int64)
    span_x, counts = x1 - x0, (x1 - x0) * (y1 - y0)
    owner = np.repeat(np.arange(len(vectors)), counts)  # partition of each covered cell
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cells = (y0[owner] + within // span_x[owner]) * grid_w + x0[owner] + within % span_x[owner]
    num_cells = grid_h * grid_w
    cell_past = from_past[owner]
    if cell_past.all():  # P-frames: one pass, no gap filling
        count = np.bincount(cells, minlength=num_cells)
        merged = np.stack(
            [np.bincount(cells, weights=values[owner], minlength=num_cells) for values in (dx, dy)]
        )
        return (merged / np.maximum(count, 1)).reshape(2, grid_h, grid_w).astype(np.float32)
    merged = np.zeros((2, num_cells))
    filled = np.zeros(num_cells, dtype=bool)
    for use in (cell_past, ~cell_past):  # past references first, future ones fill the gaps
        count = np.bincount(cells[use], minlength=num_cells)
        take = (count > 0) & ~filled
        for channel, values in enumerate((dx, dy)):
            total = np.bincount(cells[use], weights=values[owner][use], minlength=num_cells)
            merged[channel, take] = total[take] / count[take]
        filled |= take
    return merged.reshape(2, grid_h, grid_w).astype(np.float32)


def read_motion_vectors(
    path: VideoSource,
    indices: list[int] | None = None,
    block: int = 8,
    size: tuple[int, int] | None = None,
    *,
    return_has_motion: bool = False,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Motion vectors of the frames at ``indices`` (all frames by default), one per ``block`` px cell.

    Returns ``(mvs float32 (T, 2, ceil(H / block), ceil(W / block)), frame_indices int64 (T,))`` with channels
    ``(dx, dy)`` per the module's convention; ``H, W`` is ``size`` or the stored size. With
    ``return_has_motion`` also a bool ``(T,)`` flag, False for frames without vectors (I-frames).
    """
    if block not in (4, 8):
        raise ValueError(f"block must be 4 or 8; got {block}")
    iterator = PyAVFrameIterator(path, codec_options={"flags2": "+export_mvs"})
    try:
        metadata = iterator.index.metadata
        wanted = np.arange(metadata.num_frames) if indices is None else np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= metadata.num_frames):
            raise IndexError(f"frame indices must be in [0, {metadata.num_frames}) for {str(path)!r}")
        height, width = size or (metadata.height, metadata.width)
        grid = (math.ceil(height / block), math.ceil(width / block))
        scale = (height / metadata.height, width / metadata.width)
        unique, inverse = np.unique(wanted, return_inverse=True)
        motion = np.zeros((len(unique), 2, *grid), dtype=np.float32)
        has_motion = np.zeros(len(unique), dtype=bool)
        for i, (_, frame) in enumerate(iterator.frames(unique.tolist())):
            side_data = frame.side_data.get("MOTION_VECTORS")
            if side_data is not None and len(side_data):
                motion[i] = _rasterise(side_data.to_ndarray(), grid, block, scale)
                has_motion[i] = True
    finally:
        iterator.close()
    inverse = inverse.reshape(-1)
    result = (torch.from_numpy(motion[inverse]), torch.from_numpy(wanted))
    return (*result, torch.from_numpy(has_motion[inverse])) if return_has_motion else result


def keyframe_indices(path: VideoSource) -> list[int]:
    """Indices of the keyframes (I/IDR frames), from the packet scan alone (nothing is decoded)."""
    return probe(path).keyframes.tolist()


def read_keyframes(
    path: VideoSource, size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All keyframes as uint8 ``(K, H, W, 3)`` RGB and their frame indices ``(K,)``.

    The decoder skips every non-key frame (``skip_frame="NONKEY"``), so this costs about K frame decodes.
    """
    index = probe(path)
    to_rgb = RGBConverter(size)
    frames, found = [], []
    container = _open_container(as_source(path))
    try:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            if index.pts is None:
                raise VideoDecodeError(path, "stream without timestamps: keyframe positions unknown")
            position = int(np.searchsorted(index.pts, frame.pts))
            if position < len(index.pts) and index.pts[position] == frame.pts:
                frames.append(to_rgb(frame))
                found.append(position)
    except av.FFmpegError as err:
        raise VideoDecodeError(path, f"decoding failed ({err})") from err
    finally:
        container.close()
    if not frames:
        raise VideoDecodeError(path, "no keyframe could be decoded")
    return torch.from_numpy(np.stack(frames)), torch.tensor(found, dtype=torch.int64)


_GEOMETRIC = (RandomResizedCrop, ShortSideScale, CenterCrop, RandomHorizontalFlip)


def replay_geometry(
    transform: VideoTransform,
    params: list | dict,
    field: torch.Tensor,
    block: int,
    frame_size: tuple[int, int],
) -> torch.Tensor:
    """A motion-vector clip cropped, resized and flipped as a clip's transform did it.

    The field is spread to the clip's pixels (each cell over its ``block x block`` pixels), goes through the
    geometric steps of ``transform`` with the clip's ``params`` (crops, resizes, flips; colour steps do not
    apply), and is pooled back to cells. Vectors follow the geometry: a flip negates ``dx``, a resize scales
    each component by its factor.

    Args:
        transform: the clip's transform (a :class:`~zoo.data.transforms.Compose` or one step).
        params: what ``transform.forward_with_params`` returned for the clip (a single clip, no views).
        field: ``(2, T, ceil(H / block), ceil(W / block))`` motion vectors ``(dx, dy)``.
        block: cell side in pixels.
        frame_size: ``(H, W)`` of the frames the clip was decoded at.

    Returns:
        ``(2, T, ceil(h / block), ceil(w / block))`` for the transformed clip's ``(h, w)``.
    """
    height, width = frame_size
    dense = field.repeat_interleave(block, -2).repeat_interleave(block, -1)[..., :height, :width]
    steps, step_params = (
        (list(transform.transforms), list(params))
        if isinstance(transform, Compose)
        else ([transform], [params])
    )
    for step, p in zip(steps, step_params, strict=True):
        if not isinstance(step, _GEOMETRIC):
            continue
        before = dense.shape[-2:]
        dense = step.replay(dense, p)
        if isinstance(step, RandomHorizontalFlip):
            if bool(p["flip"]):
                dense = torch.cat([-dense[:1], dense[1:]])
            continue
        if isinstance(step, RandomResizedCrop):
            _, _, crop_h, crop_w = (int(v) for v in p["box"].reshape(-1))
            before = (crop_h, crop_w)
        if not isinstance(step, CenterCrop):  # a resize: displacements scale with the content
            scale = torch.tensor([dense.shape[-1] / before[1], dense.shape[-2] / before[0]])
            dense = dense * scale.view(2, 1, 1, 1).to(dense)
    cells = (math.ceil(dense.shape[-2] / block), math.ceil(dense.shape[-1] / block))
    pooled = F.adaptive_avg_pool2d(rearrange(dense, "m t h w -> (m t) h w"), cells)
    return rearrange(pooled, "(m t) h w -> m t h w", m=2)
