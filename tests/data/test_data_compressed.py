"""Motion vectors and keyframes read from H.264: direction, magnitude, layout, keyframe positions."""

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data.compressed import _rasterise, keyframe_indices, read_keyframes, read_motion_vectors
from zoo.data.encode import decode_index, index_pattern_frames, write_video
from zoo.data.video import VideoDecodeError

GOP = 12
NUM_FRAMES = 20


def _translating(path: Path, dx: int, dy: int, bframes: int) -> Path:
    """A 64x96 texture (4 px random squares) moving by (dx, dy) pixels per frame."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)  # (160, 240, 3)
    frames = np.stack([np.roll(texture, (dy * t, dx * t), (0, 1))[:64, :96] for t in range(NUM_FRAMES)])
    return write_video(path, frames, 25.0, gop=GOP, bframes=bframes)


@pytest.mark.parametrize("motion", [(2, 1), (-3, 2)])
def test_global_translation_is_recovered(tmp_path, motion):
    path = _translating(tmp_path / "move.mp4", *motion, bframes=0)
    mvs, indices, has_motion = read_motion_vectors(path, return_has_motion=True)
    assert mvs.shape == (NUM_FRAMES, 2, 8, 12) and mvs.dtype == torch.float32
    assert indices.tolist() == list(range(NUM_FRAMES))
    keyframes = [0, GOP]
    assert keyframe_indices(path) == keyframes
    assert has_motion.tolist() == [i not in keyframes for i in range(NUM_FRAMES)]
    assert mvs[keyframes].abs().sum() == 0
    moving = mvs[has_motion]  # (T', 2, 8, 12); P-frames reference the previous frame
    assert moving[:, 0].median().item() == pytest.approx(motion[0], abs=0.25)
    assert moving[:, 1].median().item() == pytest.approx(motion[1], abs=0.25)
    assert (moving[:, 0].sign() == np.sign(motion[0])).float().mean() > 0.9


def test_b_frames_point_forward_in_time(tmp_path):
    path = _translating(tmp_path / "move_b.mp4", 2, 1, bframes=2)
    mvs, _, has_motion = read_motion_vectors(path, return_has_motion=True)
    per_frame_dx = mvs[has_motion][:, 0].flatten(1).median(dim=1).values
    # references 1..3 frames away: 2..6 px, and always the direction of the motion
    assert (per_frame_dx >= 1.75).all() and (per_frame_dx <= 6.25).all()


def test_block_size_resize_and_index_selection(tmp_path):
    path = _translating(tmp_path / "move.mp4", 2, 1, bframes=0)
    full, _ = read_motion_vectors(path, block=4)
    assert full.shape == (NUM_FRAMES, 2, 16, 24)
    half, _ = read_motion_vectors(path, block=4, size=(32, 48))
    assert half.shape == (NUM_FRAMES, 2, 8, 12)
    assert half[3, 0].median().item() == pytest.approx(full[3, 0].median().item() / 2, abs=0.13)
    picked, indices = read_motion_vectors(path, indices=[5, 1, 5, 13], block=4)
    assert indices.tolist() == [5, 1, 5, 13]
    assert torch.equal(picked, full[[5, 1, 5, 13]])
    with pytest.raises(ValueError, match="block"):
        read_motion_vectors(path, block=5)


def test_rasterise_places_and_averages_partitions():
    fields = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "flags", "motion_x", "motion_y"]
    dtype = np.dtype([(name, np.int32) for name in fields] + [("motion_scale", np.uint16)])
    vectors = np.array(
        [
            # 16x16 block centred at (8, 8) from the past, motion_x = src - dst = -8 quarter-pels: dx = +2
            (-1, 16, 16, 0, 0, 8, 8, 0, -8, 4, 4),
            # two 4x4 partitions inside the cell at row 0, col 2 (pixels x 16..23): dx 1 and 3, average 2
            (-1, 4, 4, 0, 0, 18, 2, 0, -4, 0, 4),
            (-1, 4, 4, 0, 0, 22, 2, 0, -12, 0, 4),
            # a future reference over the same cell is ignored where a past one exists ...
            (1, 8, 8, 0, 0, 20, 4, 0, 40, 0, 4),
            # ... and used, negated, where none does: cell row 1, col 2, dx = +10 / 4 = 2.5
            (1, 8, 8, 0, 0, 20, 12, 0, 10, 0, 4),
        ],
        dtype=dtype,
    )
    grid = _rasterise(vectors, (2, 3), 8, (1.0, 1.0))
    expected_dx = np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 2.5]])
    expected_dy = np.array([[-1.0, -1.0, 0.0], [-1.0, -1.0, 0.0]])
    np.testing.assert_allclose(grid[0], expected_dx)
    np.testing.assert_allclose(grid[1], expected_dy)


def test_read_keyframes(tmp_path):
    path = write_video(tmp_path / "idx.mp4", index_pattern_frames(30, 32, 48), 25.0, gop=GOP, bframes=2)
    frames, indices = read_keyframes(path)
    assert indices.tolist() == [0, 12, 24] == keyframe_indices(path)
    assert frames.shape == (3, 32, 48, 3) and frames.dtype == torch.uint8
    assert [decode_index(f) for f in frames] == [0, 12, 24]
    small, _ = read_keyframes(path, size=(32, 32))
    assert small.shape == (3, 32, 32, 3)


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"junk" * 300)
    with pytest.raises(VideoDecodeError, match=str(path)):
        read_motion_vectors(path)
    with pytest.raises(VideoDecodeError, match=str(path)):
        read_keyframes(path)


def test_rasterise_past_only_frames_average_every_partition_of_a_cell():
    """P-frames (every vector from the past) take a single pass; it must equal a per-cell average."""
    fields = ["source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "flags", "motion_x", "motion_y"]
    dtype = np.dtype([(name, np.int32) for name in fields] + [("motion_scale", np.uint16)])
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):  # random 4x4 / 8x8 / 16x16 partitions on a 32x24 frame
        side = int(rng.choice([4, 8, 16]))
        x, y = int(rng.integers(0, 32 // side)) * side, int(rng.integers(0, 24 // side)) * side
        rows.append((-1, side, side, 0, 0, x + side // 2, y + side // 2, 0, *rng.integers(-20, 20, 2), 4))
    vectors = np.array(rows, dtype=dtype)
    grid = _rasterise(vectors, (3, 4), 8, (1.0, 1.0))
    sums, counts = np.zeros((2, 3, 4)), np.zeros((3, 4))
    for v in vectors:  # every 8 px cell a partition overlaps gets its vector (dst - src = -motion / 4)
        for row in range(max(0, (v["dst_y"] - v["h"] // 2) // 8), (v["dst_y"] + v["h"] // 2 + 7) // 8):
            for col in range(max(0, (v["dst_x"] - v["w"] // 2) // 8), (v["dst_x"] + v["w"] // 2 + 7) // 8):
                sums[:, row, col] += (-v["motion_x"] / 4, -v["motion_y"] / 4)
                counts[row, col] += 1
    np.testing.assert_allclose(grid, sums / np.maximum(counts, 1), rtol=1e-6)
