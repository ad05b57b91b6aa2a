"""DSM's spatial local disturbance: the vectorised warp against a straightforward per-pixel implementation.

The released DSM code warps clips with Python loops over the pixels of each warp's window
(``spatial_warp_torch``). zoo's :func:`zoo.data.video_augment.spatial_local_disturbance` builds each
warp as an index map over (H, W), composes the warps of a clip and gathers the clip once. Both run
here on the same clips and the same warp points (1–3 warps, the code's ranges at 224 pixels), one CPU
thread; the outputs are checked equal before timing. Rows: batch × clip size; times are the median of
``--repeats`` runs. Run: ``python benchmarks/dsm_warp.py``. Writes docs/benchmarks/dsm_warp.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from zoo.data.video_augment import draw_warp_points, spatial_local_disturbance, spatial_warp_per_pixel

CASES = [(8, 16, 112), (8, 16, 224)]  # (batch, frames, side)


def per_pixel(clips: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The straightforward form: each warp of the batch's shared draw, pixel by pixel (as the code)."""
    for point in points[0].tolist():
        if point[2] or point[3]:
            clips = spatial_warp_per_pixel(clips, tuple(point))
    return clips


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--out", default=str(Path(__file__).parents[1] / "docs" / "benchmarks" / "dsm_warp.md")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch, frames, side in CASES:
        clips = torch.rand(batch, 3, frames, side, side, generator=generator)
        # one draw for the batch, as the code, with exactly 3 warps (the slowest case of 1-3)
        points = draw_warp_points(batch, (side, side), per_clip=False, generator=generator)
        points[:, :, 2:] = points[:1, :1, 2:].clamp_min(1)
        assert torch.equal(spatial_local_disturbance(clips, points), per_pixel(clips, points))
        loop = median_seconds(lambda c=clips, p=points: per_pixel(c, p), args.repeats)
        fast = median_seconds(lambda c=clips, p=points: spatial_local_disturbance(c, p), args.repeats)
        shape = f"{batch}×3×{frames}×{side}×{side}"
        rows.append(f"| {shape} | 3 | {loop * 1e3:.1f} | {fast * 1e3:.1f} | {loop / fast:.0f}× |")
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| clips (B×C×T×H×W) | warps | per-pixel loop, ms | vectorised, ms | speed-up |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    text = (
        "# DSM warp: vectorised against per-pixel\n\n"
        "`python benchmarks/dsm_warp.py` — the same clips and warp points through a straightforward "
        "per-pixel implementation of DSM's spatial local disturbance (Python loops over each warp's window, "
        "as the released code) and through zoo's vectorised `spatial_local_disturbance` (index maps composed, "
        "one gather); outputs checked equal first. One CPU thread, median of "
        f"{args.repeats} runs, {platform.processor() or platform.machine()}, torch {torch.__version__}.\n\n"
        f"{table}\n"
    )
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
