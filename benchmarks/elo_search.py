"""ELo's evolutionary search over λ on SynthMotion: does the Zipf fitness follow downstream accuracy?

    PYTHONPATH=. python benchmarks/elo_search.py [--population 4] [--generations 1] [--steps 10]

Runs ``zoo elo search``'s driver (:func:`zoo.methods.elo_search.evolve` around
:class:`~zoo.methods.elo_search.ProxyTraining`) on a small SynthMotion set with sound, then prints every
candidate (fitness = KL of the student's k-means cluster shares to a Zipf prior, lower is better;
kNN top-1 on the unbiased test split, never used for selection) and the correlation of the two over
the searched population, and writes the table to docs/benchmarks/elo_search.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.methods.elo_search import ProxyTraining, evolve

SYNTH = {
    "num_classes": 4,
    "train_per_class": 12,
    "val_per_class": 2,
    "test_per_class": 6,
    "size": 32,
    "num_frames": 12,
    "long_videos": 0,
    "reid_identities": 0,
    "audio": True,
    "qa_per_clip": 0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--out", default="runs/elo_search_benchmark")
    parser.add_argument("--doc", default="docs/benchmarks/elo_search.md")
    args = parser.parse_args()
    out = Path(args.out)
    data = {
        "synth": SYNTH,
        "synth_root": str(out / "synth"),
        "batch_size": 16,
        "num_workers": 0,
        "persistent_workers": False,
    }
    proxy = ProxyTraining(
        Path("configs/elo/synthmotion.yaml"), out, args.steps, args.clusters, data_args=data
    )
    result = evolve(
        proxy.initial_weights(),
        proxy,
        args.population,
        args.generations,
        on_candidate=lambda c: print(f"gen {c.generation}  fitness {c.fitness:.4f}  {c.figures}", flush=True),
    )
    correlation = result.correlation("knn_top1")
    (out / "search.json").write_text(json.dumps({**result.to_json(), "correlation": correlation}, indent=1))
    names = list(result.history[0].weights)
    lines = [
        "# ELo search on SynthMotion",
        "",
        f"`PYTHONPATH=. python benchmarks/elo_search.py --population {args.population} "
        f"--generations {args.generations} --steps {args.steps} --clusters {args.clusters}`: "
        f"{len(result.history)} proxy trainings of {args.steps} steps (r3d_tiny student, batch 16) on "
        f"SynthMotion with sound (4 classes, {SYNTH['train_per_class'] * 4} training clips). Fitness: KL of "
        f"the student's k-means (k = {args.clusters}) cluster shares on the training split to a Zipf prior "
        "(s = 1), lower is better; kNN top-1 (k = 10) on the test split, recorded, never used for selection.",
        "",
        "| # | generation | fitness | kNN top-1 | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for i, c in enumerate(result.history):
        lambdas = " | ".join(f"{c.weights[n]:.2f}" for n in names)
        lines.append(f"| {i} | {c.generation} | {c.fitness:.4f} | {c.figures['knn_top1']:.1f} | {lambdas} |")
    lines += [
        "",
        f"Correlation of fitness with kNN top-1 over the {correlation['n']} candidates: Pearson "
        f"{correlation['pearson']:.3f}, Spearman {correlation['spearman']:.3f} (a useful fitness correlates "
        "negatively: lower KL, higher accuracy).",
    ]
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    Path(args.doc).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
