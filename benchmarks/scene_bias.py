"""Scene bias on SynthMotion: do the debiasing methods (BE, DSM, CMD, ELo) encode more motion and less
scene than plain MoCo, with the same backbone size and the same budget?

SynthMotion's class is the motion; its training split ties each class to a background family (scene
bias 0.8: 80 % of a class's clips on its designated family), its val and test splits do not (every class
on every family equally often). Each method pre-trains on the biased training split with its recipe
``configs/<method>/synthmotion.yaml`` for the same number of epochs, then its frozen clip encoder
(centre clip, eval transform; ELo's RGB student, not its teachers) is scored on the unbiased splits:

- motion: linear probe and kNN on the motion classes, trained on the (biased) training split, scored on
  the test split — features that encode the scene rather than the motion do not transfer;
- scene: a linear probe trained to predict the background family on the val split, scored on the test
  split (both unbiased: the family is independent of the class there) — the scene information left in
  the features, higher = more scene.

A reference row (:class:`FirstFrameSpectrum`, a fixed 13-number texture descriptor of the first frame)
shows what the scene probe reads when the features carry the background. ``--frame-difference`` makes
every clip encoder read residual frames instead, which removes the static scene by construction.

    python benchmarks/scene_bias.py --epochs 20 --seeds 0 1

prints a markdown table and writes ``docs/benchmarks/scene_bias.md``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import StepProgress, cpu_trainer, eval_datamodule, timed_fit

from zoo.data.datamodule import VideoDataModule
from zoo.data.synthmotion import BACKGROUNDS
from zoo.eval.features import FeatureSet, extract_features
from zoo.eval.knn import knn_accuracy
from zoo.eval.linear import linear_probe
from zoo.methods.base import SSLMethod

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "scene_bias.md"
METHODS = ("moco", "be", "dsm", "cmd", "elo")
# what only the training samples need (CMD's and ELo's motion vectors, CMD's keyframes, ELo's sound, the
# MoCo views)
EVAL_DROP = ("motion_vectors", "motion_offset", "motion_frames", "keyframe", "keyframe_reach", "view_clips",
             "negative_min_gap", "audio", "audio_seconds")  # fmt: skip


def _recipe(method: str) -> tuple[type[SSLMethod], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The method class, its init args, the data module's init args and the trainer's, from the recipe."""
    config = yaml.safe_load((ROOT / "configs" / method / "synthmotion.yaml").read_text())
    module_name, class_name = config["model"]["class_path"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls, dict(config["model"]["init_args"]), dict(config["data"]["init_args"]), config["trainer"]


def _background_labels(datamodule: VideoDataModule, stage: str, features: FeatureSet) -> torch.Tensor:
    """The background family (index into ``BACKGROUNDS``) of every clip of ``features``, from its record."""
    records = datamodule.records(stage).records
    return torch.tensor([BACKGROUNDS.index(records[int(i)].extra["background"]) for i in features.indexes])


class FirstFrameSpectrum(torch.nn.Module):
    """A fixed scene descriptor, the reference row that shows the scene probe can see the background: log
    power of the first frame's grey image in 10 radial frequency bands, its mean absolute horizontal and
    vertical gradients and its colour contrast (13 numbers; the texture of the scene, no motion)."""

    bands = 10

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        grey = clips[:, :, 0].mean(dim=1)  # (B, H, W), first frame
        power = torch.fft.fft2(grey).abs()  # (B, H, W)
        fy, fx = torch.meshgrid(
            torch.fft.fftfreq(grey.shape[-2]), torch.fft.fftfreq(grey.shape[-1]), indexing="ij"
        )
        radius = torch.hypot(fy, fx)  # (H, W), cycles per pixel, up to √0.5
        edges = torch.linspace(0.0, 0.5**0.5, self.bands + 1)
        bands = [power[:, (radius >= lo) & (radius < hi)].mean(dim=-1) for lo, hi in pairwise(edges.tolist())]
        grad_x = (grey[..., 1:] - grey[..., :-1]).abs().mean(dim=(-2, -1))
        grad_y = (grey[..., 1:, :] - grey[..., :-1, :]).abs().mean(dim=(-2, -1))
        contrast = clips[:, :, 0].std(dim=(-2, -1)).mean(dim=1)
        return torch.stack([*bands, grad_x, grad_y, contrast], dim=1).log1p()  # (B, 13)


def _scores(encoder: torch.nn.Module, eval_dm: VideoDataModule) -> dict[str, float]:
    """Motion (linear, kNN: train -> test) and scene (linear on the background family: val -> test)."""
    num_classes = len(eval_dm.classes)
    # ``val`` = the train split
    train = extract_features(encoder, eval_dm.val_dataloader(), device="cpu", progress=False)
    test = extract_features(encoder, eval_dm.test_dataloader(), device="cpu", progress=False)
    linear = linear_probe(
        train.features, train.labels, test.features, test.labels, num_classes, weight_decay=1e-3
    )
    knn = knn_accuracy(
        train.features, train.labels, test.features, test.labels, k=20, num_classes=num_classes
    )
    # the scene probe: fitted on the val split, scored on the test split, both unbiased. Not on the
    # training split: 80 % of its clips sit on their class's family, so a probe fitted there learns the
    # motion classes again (the same figures as the motion probe, measured)
    val_manifest = Path(eval_dm.hparams.test_manifest).with_name("val.csv")
    scene_dm = VideoDataModule(**{**eval_dm.hparams, "val_manifest": str(val_manifest)})
    scene_dm.setup("validate")
    val = extract_features(encoder, scene_dm.val_dataloader(), device="cpu", progress=False)
    scene = linear_probe(
        val.features,
        _background_labels(scene_dm, "val", val),
        test.features,
        _background_labels(eval_dm, "test", test),
        len(BACKGROUNDS),
        weight_decay=1e-3,
    )
    return {"linear": linear.top1, "knn": knn["top1"], "scene": scene.top1}


def run(
    method: str, epochs: int, seed: int, untrained: bool = False, frame_difference: bool = False
) -> dict[str, Any]:
    """Pre-train ``method``'s recipe for ``epochs`` (none with ``untrained``), score its clip encoder.

    Args:
        method: the recipe folder under ``configs/``.
        epochs: pre-training epochs.
        seed: ``seed_everything`` of the run (initialisation, data order, augmentation).
        untrained: score the clip encoder at its initialisation, without training.
        frame_difference: the clip encoder reads residual frames (differences of consecutive frames).
    """
    torch.set_num_threads(1)
    L.seed_everything(seed, workers=True, verbose=False)
    cls, model_args, data_args, trainer_args = _recipe(method)
    if frame_difference:
        model_args["encoder_kwargs"] = {**(model_args.get("encoder_kwargs") or {}), "frame_difference": True}
    datamodule = VideoDataModule(**{**data_args, "seed": seed})
    model = cls(**{**model_args, "online_probe": False})
    modality = model.hparams.probe_modality
    minutes, steps = 0.0, 0
    if not untrained:
        trainer = cpu_trainer(
            max_epochs=epochs,
            log_every_n_steps=8,
            gradient_clip_val=trainer_args.get("gradient_clip_val"),
            callbacks=[StepProgress()],
        )
        minutes, steps = timed_fit(trainer, model, datamodule), trainer.global_step
    return {
        "method": "untrained" if untrained else cls.__name__,
        "encoder": model.encoder_specs[modality]["arch"],
        "clip": _clip(data_args) + (", residual" if frame_difference else ""),
        "seed": seed,
        "epochs": 0 if untrained else epochs,
        "steps": steps,
        "minutes": minutes,
        **_scores(model.encoders[modality], _eval_datamodule(data_args, seed)),
    }


def reference(seed: int) -> dict[str, Any]:
    """The scene probe's reference: :class:`FirstFrameSpectrum` of MoCo's clips, scored like an encoder."""
    data_args = _recipe("moco")[2]
    return {
        "method": "reference",
        "encoder": "first-frame spectrum (fixed)",
        "clip": _clip(data_args),
        "seed": seed,
        "epochs": 0,
        "steps": 0,
        "minutes": 0.0,
        **_scores(FirstFrameSpectrum(), _eval_datamodule(data_args, seed)),
    }


def _clip(data_args: dict[str, Any]) -> str:
    return f"{data_args['num_frames']}×{data_args['size']}² stride {data_args.get('stride', 1.0):g}"


def _eval_datamodule(data_args: dict[str, Any], seed: int) -> VideoDataModule:
    """The train (as ``val``) and test splits of a recipe's data, set up for frozen-feature scoring."""
    eval_dm = eval_datamodule({**{k: v for k, v in data_args.items() if k not in EVAL_DROP}, "seed": seed})
    eval_dm.setup("validate")
    eval_dm.setup("test")
    return eval_dm


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per (method, encoder): mean ± sd over seeds, and the per-seed figures."""
    head = (
        "| method | clip encoder | clip | seeds | epochs | steps | train time (min) | motion linear top-1 "
        "| motion kNN top-1 | scene probe top-1 (lower = less scene) | per seed (linear / kNN / scene) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["encoder"]), []).append(row)
    body = ""
    for (method, encoder), group in groups.items():
        per_seed = "; ".join(f"{r['linear']:.1f} / {r['knn']:.1f} / {r['scene']:.1f}" for r in group)
        body += (
            f"| {method} | {encoder} | {group[0]['clip']} | {', '.join(str(r['seed']) for r in group)} "
            f"| {group[0]['epochs']} | {group[0]['steps']} | {statistics.mean(r['minutes'] for r in group):.1f} "
            f"| {_mean_sd([r['linear'] for r in group])} | {_mean_sd([r['knn'] for r in group])} "
            f"| {_mean_sd([r['scene'] for r in group])} | {per_seed} |\n"
        )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=10, help="pre-training epochs, the same for every method"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--frame-difference",
        action="store_true",
        help="every clip encoder reads residual frames: removes the static scene by construction",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    command = (
        f"python benchmarks/scene_bias.py --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}"
    )
    if args.methods != list(METHODS):
        command += f" --methods {' '.join(args.methods)}"
    if args.frame_difference:
        command += " --frame-difference"
    machine = f"{platform.machine()}, torch {torch.__version__}, 1 thread"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = [(method, seed, False) for method in args.methods for seed in args.seeds]
    # the two clip encoders at their random initialisation
    runs += [(method, args.seeds[0], True) for method in ("moco", "cmd") if method in args.methods]
    rows = [reference(args.seeds[0])]
    for method, seed, untrained in runs:
        rows.append(run(method, args.epochs, seed, untrained, args.frame_difference))
        print(markdown_table(rows[-1:]), flush=True)
        table = markdown_table(rows)  # written after every run: an interrupted benchmark keeps its rows
        args.out.write_text(
            "# Scene bias: MoCo, BE, DSM, CMD and ELo on SynthMotion (CPU)\n\n"
            f"Generated by `{command}` ({machine}; 2 CPU cores shared with other jobs).\n\n{table}\n{SETTINGS}\n"
        )
    print(table)
    print(f"wrote {args.out}")


SETTINGS = (
    "Settings: every method runs its recipe `configs/<method>/synthmotion.yaml` unchanged but for the "
    "number of epochs (the same for all; the LR schedule completes) and the seed (model initialisation, "
    "data order and augmentation). MoCo, BE and DSM: r3d_tiny, 8-frame clips at 32 px, batch 32, AdamW "
    "2e-3, queue 128, τ 0.07. CMD: its tiny clip network r3d_tiny_cmd (CMD's modified last stage) with "
    "the resnet10 keyframe and r3d_10_mv motion-vector encoders, 4-frame clips at 32 px, stride 2, "
    "batch 16 (its recipe). ELo: the r3d_tiny RGB student (8-frame clips at 32 px, batch 32, AdamW 2e-3) "
    "with three teachers, residual frames (r3d_tiny), sound (resnet9_audio) and motion vectors "
    "(r3d_10_mv): arrow of time on every modality, cross-modal InfoNCE (τ 0.1) and layer3/layer4 "
    "distillation, every λ 1 (its recipe); only the student is scored. SynthMotion: 8 motion classes, 256 train clips (scene bias 0.8), 96 val and "
    "96 test clips (unbiased), 8 background families. Evaluation on the frozen clip encoder's pooled "
    "features (centre clip, eval transform, the clip geometry of its training): motion linear probe = "
    "L-BFGS logistic regression (weight decay 1e-3) on standardised features of the training split, "
    "motion kNN = 20 neighbours, cosine, exp(s/0.07) votes, both scored on the test split; scene probe = "
    "the same logistic regression on the 8 background families, fitted on the val split and scored on "
    "the test split. Chance: 12.5 % for both. Untrained = the clip encoder at its random initialisation "
    "(seed of the first run). Reference = no network: 13 fixed numbers per clip (log power of the first "
    "frame in 10 radial frequency bands, mean absolute gradients, colour contrast), scored the same way; "
    "it shows what the scene probe reads when the features do carry the background texture."
)


if __name__ == "__main__":
    main()
