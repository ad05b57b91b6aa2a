"""Batched, on-device clip augmentations that break the scene and keep the motion (BE, DSM).

* :func:`background_erasing` — Background Erasing (Wang et al., CVPR 2021, §3.2; the released
  code's ``SpatialMixup`` version 2): one λ per batch, one frame ``k_i`` per clip, and every frame of
  clip i becomes ``(1 − λ)·x_t + λ·x_{k_i}`` — a static frame of the same video added throughout, so
  the clip's background gets stronger while its motion is unchanged. One broadcast, no loop.
* :func:`spatial_local_disturbance` — DSM's spatial local disturbance (Wang et al., AAAI 2021; the
  released ``spatial_warp_torch``): 1–3 local "bulge" warps, the same on every frame of a clip, so
  the appearance is distorted and the motion kept. Each warp has a point (x, y) and a shift
  (sx, sy) and moves every pixel (r, c) of the window ``x − 3·sx ≤ r < x + 3·sx``,
  ``y − 3·sy ≤ c < y + 3·sy`` by ``−w·(sx, sy)``, truncated to integers, with ``w = 0.5 / (3·(d / ‖(sx, sy)‖)⁴ + 1)`` and d the
  distance to (x + sx, y + sy); the pixel is read from the clamped source (nearest neighbour).
  Here every warp is an index map over (H, W), the warps of a clip are composed, and the clip is
  gathered once; the released code loops over the window's pixels in Python.
  :func:`spatial_warp_per_pixel` is that straightforward per-pixel form of the same warp, the
  reference the tests and ``benchmarks/dsm_warp.py`` compare with.

Differences from the released code, on purpose: its loop bounds take the window's rows from the
frame's width and its columns from the height (only equal on square crops; here rows are bounded by
H and columns by W), and it draws one warp for the whole batch where the paper warps each clip
(``draw_warp_points(per_clip=False)`` reproduces the former).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

__all__ = [
    "background_erasing",
    "draw_background_erasing",
    "draw_warp_points",
    "spatial_local_disturbance",
    "spatial_warp_per_pixel",
]

# the released code's draws, for 224-pixel crops, as fractions of the frame side
WARP_CENTER_RANGE = (60 / 224, 140 / 224)
WARP_SHIFT_RANGE = (10 / 224, 20 / 224)


def _check_clips(clips: torch.Tensor) -> None:
    if clips.ndim != 5:
        raise ValueError(f"clips must be (B, C, T, H, W), got {tuple(clips.shape)}")


def draw_background_erasing(
    batch_size: int,
    num_frames: int,
    max_lambda: float = 0.3,
    generator: torch.Generator | None = None,
) -> tuple[float, torch.Tensor]:
    """λ ~ U(0, max_lambda) for the batch and a frame index k_i ~ U{0, T − 1} per clip.

    Args:
        batch_size: B.
        num_frames: T.
        max_lambda: the upper end of λ (0.3 in the BE code).
        generator: the torch generator of the draws (None: the global one).
    """
    lam = float(torch.rand((), generator=generator)) * max_lambda
    frames = torch.randint(0, num_frames, (batch_size,), generator=generator)
    return lam, frames


def background_erasing(clips: torch.Tensor, lam: float | torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """``(1 − λ)·x_{i,:,t} + λ·x_{i,:,k_i}`` for every frame t of every clip i (a new tensor).

    Args:
        clips: (B, C, T, H, W).
        lam: λ, a float or a 0-d tensor (one per batch, as in BE).
        frames: (B,) the static frame k_i of each clip.
    """
    _check_clips(clips)
    if frames.shape != clips.shape[:1]:
        raise ValueError(f"frames must be (B,) = ({clips.shape[0]},), got {tuple(frames.shape)}")
    index = frames.to(clips.device, torch.long)
    static = clips[torch.arange(len(clips), device=clips.device), :, index]  # (B, C, H, W)
    return (1 - lam) * clips + lam * static[:, :, None]  # (B, C, T, H, W)


def _draw_range(fractions: tuple[float, float], side: int) -> tuple[int, int]:
    """Integer [low, high) of a range given as fractions of the frame side (at least one value)."""
    low = round(fractions[0] * side)
    return low, max(low + 1, round(fractions[1] * side))


def draw_warp_points(
    batch_size: int,
    size: tuple[int, int],
    max_warps: int = 3,
    center_range: tuple[float, float] = WARP_CENTER_RANGE,
    shift_range: tuple[float, float] = WARP_SHIFT_RANGE,
    per_clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Warp points (B, max_warps, 4) as (x, y, sx, sy); unused warps have a zero shift.

    Each clip gets 1 to ``max_warps`` warps; x, y, sx, sy are drawn uniformly from integer ranges
    given as fractions of the frame side (at 224 pixels the defaults are the code's [60, 140) and
    [10, 20)).

    Args:
        batch_size: B.
        size: (H, W) of the frames; the ranges scale with min(H, W).
        max_warps: the most warps per clip (3 in DSM).
        center_range: [low, high) of x and y, as fractions of the frame side.
        shift_range: [low, high) of sx and sy, as fractions of the frame side.
        per_clip: draw every clip's warps (the paper); False: one draw for the batch (the code).
        generator: the torch generator of the draws (None: the global one).
    """
    side = min(size)
    center, shift = _draw_range(center_range, side), _draw_range(shift_range, side)
    rows = batch_size if per_clip else 1
    count = torch.randint(1, max_warps + 1, (rows, 1), generator=generator)  # (R, 1)
    xy = torch.randint(*center, (rows, max_warps, 2), generator=generator)
    shifts = torch.randint(*shift, (rows, max_warps, 2), generator=generator)
    used = torch.arange(max_warps)[None, :] < count  # (R, N)
    points = torch.cat([xy, shifts * used[..., None]], dim=-1)  # (R, N, 4)
    return points.expand(batch_size, -1, -1).contiguous()


def _warp_source(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Source pixel (B, H·W) of every output pixel for one warp per clip, ``points`` (B, 4)."""
    device = points.device
    rows = torch.arange(height, device=device, dtype=torch.float64)[None, :, None]  # (1, H, 1)
    cols = torch.arange(width, device=device, dtype=torch.float64)[None, None, :]  # (1, 1, W)
    x, y, sx, sy = (points[:, i, None, None].to(torch.float64) for i in range(4))  # (B, 1, 1) each
    distance = torch.sqrt((rows - (x + sx)) ** 2 + (cols - (y + sy)) ** 2)  # (B, H, W)
    shift_length = torch.sqrt(sx**2 + sy**2).clamp_min(1e-12)
    weight = 0.5 / (3 * (distance / shift_length) ** 4 + 1)
    source_rows = (rows + torch.trunc(-weight * sx)).clamp(0, height - 1)  # (B, H, W)
    source_cols = (cols + torch.trunc(-weight * sy)).clamp(0, width - 1)
    # the window [x − 3·sx, x + 3·sx) × [y − 3·sy, y + 3·sy) (B, H, W); a zero shift makes it empty
    window = (rows >= x - 3 * sx) & (rows < x + 3 * sx) & (cols >= y - 3 * sy) & (cols < y + 3 * sy)
    source_rows = torch.where(window, source_rows, rows.expand_as(source_rows))
    source_cols = torch.where(window, source_cols, cols.expand_as(source_cols))
    return (source_rows * width + source_cols).long().flatten(1)  # (B, H·W)


def spatial_local_disturbance(clips: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply each clip's warps, in order, to every frame of it (a new tensor).

    Args:
        clips: (B, C, T, H, W).
        points: (B, N, 4) integer (x, y, sx, sy) per warp, x along H and y along W (rows with a
            zero shift do nothing); see :func:`draw_warp_points`.
    """
    _check_clips(clips)
    batch, _, _, height, width = clips.shape
    if points.ndim != 3 or points.shape[0] != batch or points.shape[2] != 4:
        raise ValueError(f"points must be (B={batch}, N, 4), got {tuple(points.shape)}")
    points = points.to(clips.device)
    source = torch.arange(height * width, device=clips.device).expand(batch, -1)  # (B, H·W): identity
    for warp in range(points.shape[1]):  # warp j reads the output of warp j − 1: compose the maps
        source = source.gather(1, _warp_source(points[:, warp], height, width))
    flat = rearrange(clips, "b c t h w -> b (c t) (h w)")
    warped = flat.gather(2, source[:, None, :].expand(-1, flat.shape[1], -1))
    return rearrange(warped, "b (c t) (h w) -> b c t h w", t=clips.shape[2], h=height)


def spatial_warp_per_pixel(clips: torch.Tensor, point: tuple[int, int, int, int]) -> torch.Tensor:
    """One warp applied to every clip, pixel by pixel in Python (the straightforward form).

    Args:
        clips: (B, C, T, H, W).
        point: (x, y, sx, sy) of the warp, x along H and y along W.
    """
    _check_clips(clips)
    height, width = clips.shape[-2:]
    x, y, sx, sy = point
    shift_length = math.sqrt(sx**2 + sy**2)
    result = clips.clone()
    for row in range(max(0, x - 3 * sx), min(height, x + 3 * sx)):
        for col in range(max(0, y - 3 * sy), min(width, y + 3 * sy)):
            distance = math.sqrt((row - (x + sx)) ** 2 + (col - (y + sy)) ** 2)
            weight = 0.5 / (3 * (distance / shift_length) ** 4 + 1)
            source_row = min(max(row + int(-weight * sx), 0), height - 1)
            source_col = min(max(col + int(-weight * sy), 0), width - 1)
            result[..., row, col] = clips[..., source_row, source_col]
    return result
