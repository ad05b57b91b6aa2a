"""Background Erasing and DSM's spatial local disturbance: batched forms against per-clip / per-pixel references."""

from __future__ import annotations

import pytest
import torch

from zoo.data.video_augment import (
    background_erasing,
    draw_background_erasing,
    draw_warp_points,
    spatial_local_disturbance,
    spatial_warp_per_pixel,
)


def test_background_erasing_adds_one_static_frame_of_each_clip_to_all_its_frames():
    torch.manual_seed(0)
    clips = torch.rand(3, 2, 5, 4, 6)
    lam, frames = draw_background_erasing(3, 5, max_lambda=0.3)
    assert 0 <= lam < 0.3 and frames.shape == (3,) and int(frames.max()) < 5
    out = background_erasing(clips, lam, frames)
    for i in range(3):
        for t in range(5):
            expected = (1 - lam) * clips[i, :, t] + lam * clips[i, :, int(frames[i])]
            torch.testing.assert_close(out[i, :, t], expected)
    assert not torch.equal(out, clips)


def test_warp_moves_pixels_by_the_weighted_shift_inside_the_window_only():
    index = torch.arange(20 * 20, dtype=torch.float32).reshape(1, 1, 1, 20, 20)  # a pixel holds its index
    x, y, sx, sy = 8, 9, 2, 3
    out = spatial_warp_per_pixel(index, (x, y, sx, sy))
    # (r, c) = (x + sx, y + sy): distance 0, weight 0.5 -> source (r - trunc(1.0), c - trunc(1.5)) = (r - 1, c - 1)
    assert out[0, 0, 0, 10, 12] == index[0, 0, 0, 9, 11]
    outside = torch.ones(20, 20, dtype=torch.bool)
    outside[x - 3 * sx : x + 3 * sx, y - 3 * sy : y + 3 * sy] = False
    assert torch.equal(out[0, 0, 0][outside], index[0, 0, 0][outside])


@pytest.mark.parametrize("size", [(24, 24), (20, 28)])
def test_vectorised_warp_equals_the_per_pixel_warp_applied_warp_after_warp(size):
    generator = torch.Generator().manual_seed(1)
    clips = torch.rand(3, 2, 3, *size, generator=generator)
    points = draw_warp_points(3, size, max_warps=3, shift_range=(0.1, 0.2), generator=generator)
    out = spatial_local_disturbance(clips, points)
    for i in range(3):
        expected = clips[i : i + 1]
        for point in points[i].tolist():
            if point[2] or point[3]:
                expected = spatial_warp_per_pixel(expected, tuple(point))
        torch.testing.assert_close(out[i : i + 1], expected, rtol=0, atol=0)
    assert not torch.equal(out, clips)


def test_warp_draws_follow_the_code_at_224_pixels_and_one_draw_per_batch_when_asked():
    generator = torch.Generator().manual_seed(2)
    points = draw_warp_points(64, (224, 224), generator=generator)
    used = points[..., 2] > 0
    assert used[:, 0].all() and set(used.sum(1).tolist()) == {1, 2, 3}
    assert int(points[..., :2].min()) >= 60 and int(points[..., :2].max()) < 140
    shifts = points[..., 2:][used]
    assert int(shifts.min()) >= 10 and int(shifts.max()) < 20
    shared = draw_warp_points(4, (224, 224), per_clip=False, generator=generator)
    assert (shared == shared[:1]).all()


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="clips must be"):
        background_erasing(torch.rand(2, 3, 4, 4), 0.1, torch.zeros(2))
    with pytest.raises(ValueError, match="points must be"):
        spatial_local_disturbance(torch.rand(2, 3, 2, 8, 8), torch.zeros(3, 1, 4))
