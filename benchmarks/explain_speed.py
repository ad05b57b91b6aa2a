"""Extremal perturbation speed: zoo against TorchRay on one image model, and zoo on an 8-frame clip.

Iterations per second of the whole optimisation loop (mask generation, perturbation, the model's forward and
backward, the step), side by side in one run: zoo's ``extremal_perturbation`` and TorchRay's on the same image
model and image (TorchRay is optional: ``pip install --no-deps --target DIR torchray`` and pass ``--torchray DIR``),
and zoo's ``extremal_perturbation_video`` on ``motionformer-tiny-synthmotion`` with an 8-frame 64² clip and the
mask geometry ``zoo explain`` uses. Median of ``--repeats`` rounds of ``--iterations`` iterations, the implementations in turn within a round,
after a warm-up round.

Run: ``python benchmarks/explain_speed.py [--torchray DIR]``. Writes docs/benchmarks/explain_speed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import zoo
from zoo.explain.extremal import extremal_perturbation, extremal_perturbation_video, mask_geometry


def iterations_per_second(cases: list[Callable[[], object]], iterations: int, repeats: int) -> list[float]:
    """Iterations per second of each case: rounds over all cases (one warm-up round first), median of rounds."""
    times: list[list[float]] = [[] for _ in cases]
    for round_ in range(repeats + 1):
        for i, run in enumerate(cases):
            start = time.perf_counter()
            run()
            if round_:
                times[i].append(time.perf_counter() - start)
    return [iterations / statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--torchray", default=os.environ.get("ZOO_TORCHRAY_PATH"), help="folder holding torchray"
    )
    parser.add_argument("--out", default="docs/benchmarks/explain_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, reps = args.iterations, args.repeats

    image_model = zoo.create_model("resnet18", num_classes=10).eval()
    image = torch.randn(1, 3, args.image_size, args.image_size)
    video_model = zoo.load("motionformer-tiny-synthmotion")
    clip = torch.randn(1, 3, 8, 64, 64)
    step, sigma = mask_geometry(64)
    image_case = f"image {args.image_size}², resnet18 (step 7, σ 21)"
    cases = {
        (image_case, "zoo"): lambda: extremal_perturbation(
            image_model, image, 3, [0.1], max_iter=n, step=7, sigma=21.0
        )
    }
    if args.torchray:
        sys.path.insert(0, args.torchray)
        from torchray.attribution.extremal_perturbation import extremal_perturbation as torchray_ep

        cases[(image_case, "TorchRay 1.0.0.2")] = lambda: torchray_ep(
            image_model, image, 3, areas=[0.1], max_iter=n, step=7, sigma=21
        )
    video_case = f"video 8×64², motionformer-tiny (step {step}, σ {sigma:g}; 1 frame, σ 2 frames)"
    cases[(video_case, "zoo")] = lambda: extremal_perturbation_video(
        video_model, clip, 3, [0.05], max_iter=n, step=step, sigma=sigma
    )
    rates = iterations_per_second(list(cases.values()), n, reps)
    rows = [(what, impl, rate) for (what, impl), rate in zip(cases, rates)]
    lines = [
        "# Extremal perturbation speed",
        "",
        f"`python benchmarks/explain_speed.py --iterations {n} --repeats {reps}` ({platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}; a CPU shared with other jobs, so compare rows of one "
        "run, not runs).",
        "",
        "| input, model | implementation | iterations / s | 100 iterations (`zoo explain`) | 800 (TorchRay's) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {what} | {impl} | {rate:.2f} | {100 / rate:.0f} s | {800 / rate:.0f} s |"
        for what, impl, rate in rows
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
