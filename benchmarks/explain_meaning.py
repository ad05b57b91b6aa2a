"""Do extremal perturbations of a video model point at the moving object? A check on SynthMotion.

``motionformer-tiny-synthmotion`` classifies SynthMotion clips by the trajectory of one object over a textured
background, and SynthMotion knows where that object is in every frame (``zoo.data.synthmotion.object_masks``).
For held-out clips (a SynthMotion set of another seed than the model's training set), this script computes the
preserve-variant space-time mask for the true class and measures the fraction of the mask's mass that falls on
the object: the soft mask's mass, and the top ``area`` fraction of its voxels. The baseline is a random mask of
the same area: random parameters through the same smooth mask generator, its top ``area`` voxels kept
(mean over ``--random-masks`` draws); a uniformly placed mask would score the object's share of the clip.

Run: ``python benchmarks/explain_meaning.py``. Writes docs/benchmarks/explain_meaning.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from pathlib import Path

import torch

import zoo
from zoo.api import entry_transform
from zoo.data import synthmotion
from zoo.explain.extremal import MaskGenerator, Perturbation, optimise_masks

MODEL = "motionformer-tiny-synthmotion"


def top_fraction(mask: torch.Tensor, area: float) -> torch.Tensor:
    """A 0/1 mask keeping the ``area`` fraction of ``mask``'s largest voxels."""
    flat = mask.flatten()
    keep = torch.zeros_like(flat)
    keep[flat.topk(max(1, round(area * flat.numel()))).indices] = 1
    return keep.view_as(mask)


def mass_on(mask: torch.Tensor, target: torch.Tensor) -> float:
    """The fraction of ``mask``'s mass on ``target`` (coverage in [0, 1])."""
    return float((mask * target).sum() / mask.sum().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="held-out clips, spread over the classes")
    parser.add_argument("--area", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--sigma", type=float, default=4.0)
    parser.add_argument("--time-sigma", type=float, default=1.0)
    parser.add_argument("--random-masks", type=int, default=20)
    parser.add_argument(
        "--seed", type=int, default=7, help="SynthMotion seed (the model was trained on seed 1)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.1,
        help="TorchRay's is 0.01 with 800 iterations; fewer need more",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/benchmarks/explain_meaning.md")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = zoo.load(MODEL)
    entry = model.card.entry
    per_class = -(-args.clips // 8)
    config = synthmotion.SynthMotionConfig(
        seed=args.seed,
        num_frames=32,
        train_per_class=0,
        val_per_class=0,
        test_per_class=per_class,
        audio=False,
        long_videos=0,
        reid_identities=0,
        languages=("en",),
        captions_per_language=1,
        qa_per_clip=0,
    )
    root = synthmotion.ensure(config, progress=False)
    # frames at the native 64 pixels (no resize, no crop), so the object masks need no geometry
    preprocess = dataclasses.replace(entry_transform(entry), short_side=entry.preprocess.size)
    rows, started = [], time.perf_counter()
    for index in sorted({round(i * 8 * per_class / args.clips) for i in range(args.clips)}):  # classes spread
        relpath = f"videos/test/test_{index:05d}.mp4"
        label = index % 8
        sample = preprocess._dataset(root / relpath)[0]
        video = sample["video"].unsqueeze(0)  # (1, C, T, H, W)
        frames = sample["frame_indices"].reshape(-1)  # (T,)
        objects = torch.from_numpy(synthmotion.object_masks(root, relpath))[frames]  # (T, H, W)
        with torch.no_grad():
            predicted = int(model(video).argmax(dim=1))
        generator = MaskGenerator(
            video.shape[-3:], (1, args.step, args.step), (args.time_sigma, args.sigma, args.sigma)
        )
        explanation = optimise_masks(
            model,
            Perturbation(video),
            generator,
            label,
            [args.area],
            max_iter=args.iterations,
            jitter=False,
            learning_rate=args.learning_rate,
        )
        mask = explanation.masks[0, 0]  # (T, H, W)
        random_scores = []
        for _ in range(args.random_masks):
            random_mask, _ = generator.generate(torch.rand(1, 1, *generator.shape_in))
            random_scores.append(mass_on(top_fraction(random_mask[0, 0], args.area), objects))
        rows.append(
            dict(
                clip=relpath.rsplit("/", 1)[1],
                label=synthmotion.CLASSES[label],
                correct=predicted == label,
                object_share=float(objects.mean()),
                soft=mass_on(mask, objects),
                top=mass_on(top_fraction(mask, args.area), objects),
                random=statistics.mean(random_scores),
            )
        )
        print(rows[-1], f"{time.perf_counter() - started:.0f}s", flush=True)
    write_table(rows, args, time.perf_counter() - started)


def write_table(rows: list[dict], args: argparse.Namespace, seconds: float) -> None:
    lines = [
        "# Extremal perturbations on SynthMotion: mass on the moving object",
        "",
        f"`python benchmarks/explain_meaning.py --clips {args.clips} --iterations {args.iterations}` "
        f"({platform.machine()}, torch {torch.__version__}, {seconds / 60:.0f} min on a shared 2-core CPU).",
        "",
        f"Model `{MODEL}`; held-out SynthMotion clips (seed {args.seed}; the model was trained on seed 1), 8 frames "
        "at 64², frames at native resolution. Preserve variant for the true class, "
        f"area {args.area} of the clip's volume, {args.iterations} iterations at learning rate {args.learning_rate} "
        f"(TorchRay: 800 at 0.01, out of reach of this CPU for a clip), mask step {args.step} px / "
        f"sigma {args.sigma} px, 1 frame / {args.time_sigma} frames in time, blur up to 20 px, no jitter. "
        "Columns: the object's share of the clip (what a uniformly placed mask scores); the fraction of the soft "
        f"mask's mass on the object; the same for its top {args.area:.0%} voxels; and for the top "
        f"{args.area:.0%} voxels of a random smooth mask from the same generator (mean of {args.random_masks}).",
        "",
        "| clip | class | model right | object share | EP soft mass | EP top area | random top area |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['label']} | {'yes' if r['correct'] else 'no'} | {r['object_share']:.3f} "
            f"| {r['soft']:.3f} | {r['top']:.3f} | {r['random']:.3f} |"
        )
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("object_share", "soft", "top", "random")}
    lines.append(
        f"| **mean** | | {sum(r['correct'] for r in rows)}/{len(rows)} | {mean['object_share']:.3f} "
        f"| {mean['soft']:.3f} | {mean['top']:.3f} | {mean['random']:.3f} |"
    )
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
