"""TOT on SynthMotion's long videos: does its temporal optimal transport find the sub-actions better than
k-means on the same features and than plain (non-temporal) OT?

Data: SynthMotion (seed 1) long videos, 8 per task (square_tour: 4 sub-actions, spin_and_shake: 3,
drop_and_bounce: 5), each frame embedded by the shipped ``motionformer-tiny-synthmotion`` (an 8-frame
window, stride 2, 96-d pooled features; extracted once and cached). One model per task (as TOT), with K =
its number of sub-actions. Methods, every one evaluated on all the task's videos with one Hungarian
matching per task (MoF, F1@{10,25,50}, edit; CTE/TOT protocol):

* k-means — k-means on the raw features, frames labelled by their cluster (no decoding);
* plain OT (released code) — TOT trained as its released scripts run it: no temporal prior, no coherence
  loss, Viterbi in prototype order;
* plain OT + time order — the same training, decoded with clusters ordered by mean time;
* TOT (paper) — temporal prior and coherence loss, clusters ordered by mean time, fixed-order Viterbi.

TOT variants train ``--steps`` steps (2 videos x 64 sorted frames a batch, Adam 1e-3, prototypes frozen
for the first 50 steps), over ``--seeds`` seeds; the table gives mean ± standard deviation over seeds.

Run: ``python benchmarks/tot_segmentation.py``. Writes docs/benchmarks/tot_segmentation.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer, seed_everything

from zoo.data.synthmotion import LONG_TASKS
from zoo.eval.long_video_features import LongVideoFeatureDataModule
from zoo.eval.segmentation import segmentation_metrics
from zoo.methods.tot import TOT
from zoo.objectives.kmeans import kmeans

SYNTH = {
    "seed": 1,
    "long_videos": 24,
    "train_per_class": 0,
    "val_per_class": 0,
    "test_per_class": 0,
    "reid_identities": 0,
    "audio": False,
    "qa_per_clip": 0,
}
BACKBONE = {
    "backbone": "motionformer_tiny",
    "pretrained": "motionformer-tiny-synthmotion",
    "backbone_kwargs": {"num_classes": 8, "frame_difference": True},
    "clip_frames": 8,
    "clip_stride": 2,
}
VARIANTS = {
    "plain OT (released code)": dict(temporal_ot=False, coherence_loss=False, decode_order="index"),
    "plain OT + time order": dict(temporal_ot=False, coherence_loss=False, decode_order="time"),
    "TOT (paper)": dict(temporal_ot=True, coherence_loss=True, decode_order="time"),
}
METRICS = ("MoF", "F1@10", "F1@25", "F1@50", "Edit")


def _videos(datamodule: LongVideoFeatureDataModule) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]  # every video of the task, whole
    samples = [dataset[i] for i in range(len(dataset))]
    return [s["features"] for s in samples], [s["segments"].numpy() for s in samples]


def _kmeans(features: list[torch.Tensor], clusters: int, seed: int) -> list[np.ndarray]:
    result = kmeans(torch.cat(features), clusters, seed=seed)
    return np.split(result.assignments.numpy(), np.cumsum([len(f) for f in features])[:-1])


def _tot(datamodule, features, clusters: int, variant: dict, steps: int, seed: int) -> list[np.ndarray]:
    seed_everything(seed, verbose=False)
    model = TOT(
        feature_dim=features[0].shape[1], num_clusters=clusters, freeze_prototypes_steps=50, **variant
    )
    trainer = Trainer(
        max_steps=steps,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule.train_dataloader())
    model.eval()
    return model.segment(features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--out", default=str(Path(__file__).parents[1] / "docs/benchmarks/tot_segmentation.md")
    )
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    started = time.perf_counter()
    scores: dict[str, dict[str, list[dict[str, float]]]] = {}  # method -> task -> per seed
    frames_of_task: dict[str, int] = {}
    for task, steps_of_task in LONG_TASKS.items():
        clusters = len(steps_of_task)
        datamodule = LongVideoFeatureDataModule(activity=task, synth=SYNTH, **BACKBONE, seed=0)
        features, targets = _videos(datamodule)
        frames_of_task[task] = sum(len(t) for t in targets)
        for name in ("k-means", *VARIANTS):
            for seed in range(args.seeds):
                if name == "k-means":
                    predictions = _kmeans(features, clusters, seed)
                else:
                    predictions = _tot(datamodule, features, clusters, VARIANTS[name], args.steps, seed)
                metrics = segmentation_metrics(predictions, targets, "dataset")
                scores.setdefault(name, {}).setdefault(task, []).append(metrics)
                print(
                    f"{task:16s} {name:26s} seed {seed}: " + " ".join(f"{metrics[m]:5.1f}" for m in METRICS)
                )
    elapsed = time.perf_counter() - started

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.1f} ± {spread:.1f}"

    lines = [
        "# TOT on SynthMotion's long videos: temporal OT against k-means and plain OT",
        "",
        f"Generated by `python benchmarks/tot_segmentation.py --steps {args.steps} --seeds {args.seeds}` "
        f"({platform.processor() or platform.machine()}, torch {torch.__version__}, {elapsed / 60:.0f} min).",
        "",
        __doc__.split("\n\n", 1)[1].split("\n\nRun:")[0],
        "",
        "## All tasks (matching per task; frames pooled over the 24 videos)",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for name, by_task in scores.items():
        pooled = []
        for seed in range(args.seeds):
            weights = [frames_of_task[task] for task in by_task]
            pooled.append(
                {
                    m: float(np.average([by_task[task][seed][m] for task in by_task], weights=weights))
                    for m in METRICS
                }
            )
        lines.append(f"| {name} | " + " | ".join(cell([p[m] for p in pooled]) for m in METRICS) + " |")
    lines += ["", "## Per task (MoF / F1@50)", "", "| method | " + " | ".join(LONG_TASKS) + " |"]
    lines.append("|---|" + "---|" * len(LONG_TASKS))
    for name, by_task in scores.items():
        cells = [
            f"{cell([r['MoF'] for r in by_task[task]])} / {cell([r['F1@50'] for r in by_task[task]])}"
            for task in LONG_TASKS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The pooled row weights each task by its frames (MoF) — and, for F1 and edit, by the same frame",
        "counts, an approximation of pooling segments. Chance for MoF is about 100/K per task.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
