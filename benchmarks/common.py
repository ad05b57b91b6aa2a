"""Pieces shared by the learning-signal benchmarks: a quiet CPU trainer, progress lines, recipe fits
through ``zoo fit``, the eval datamodule of frozen-feature probes and the linear-probe/kNN scores.

Scripts in ``benchmarks/`` import it after putting their own folder first on ``sys.path``:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import cpu_trainer, timed_fit
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from zoo.cli import main as zoo_main
from zoo.data.datamodule import VideoDataModule
from zoo.eval.features import extract_features
from zoo.eval.knn import knn_accuracy
from zoo.eval.linear import linear_probe

TRAIN_ONLY_KEYS = ("num_views", "view_clips", "max_view_distance", "train_transform", "synth", "synth_root")


def cpu_trainer(**overrides: Any) -> L.Trainer:
    """A one-device CPU trainer without logger, checkpoints, summary, validation or progress bar.

    Args:
        **overrides: further ``L.Trainer`` arguments (``max_epochs``, ``callbacks``...), or replacements.
    """
    settings = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
    )
    return L.Trainer(**{**settings, **overrides})


def timed_fit(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule) -> float:
    """Fit ``model`` on ``datamodule`` and return the wall time in minutes."""
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    return (time.perf_counter() - start) / 60


class StepProgress(L.Callback):
    """One line every ``every`` steps: step, loss, minutes."""

    def __init__(self, every: int = 25):
        self.every, self.start = every, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0:
            loss = float(trainer.callback_metrics.get("train/loss_step", float("nan")))
            minutes = (time.perf_counter() - self.start) / 60
            print(
                f"step {trainer.global_step}/{trainer.max_steps}  loss {loss:.3f}  {minutes:.1f} min",
                flush=True,
            )


class EpochProgress(L.Callback):
    """One line per epoch: epoch, training loss, minutes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        loss = float(trainer.callback_metrics.get("train/loss_epoch", float("nan")))
        minutes = (time.perf_counter() - self.start) / 60
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  loss {loss:.3f}  {minutes:.1f} min",
            flush=True,
        )


def recipe_args(recipe: Path, section: str) -> dict[str, Any]:
    """The ``init_args`` of ``section`` (``model`` or ``data``) of a recipe file."""
    return dict(yaml.safe_load(recipe.read_text())[section]["init_args"])


def zoo_fit(
    recipe: Path, run_dir: Path, seed: int, max_epochs: int, init_args: dict[str, dict[str, Any]]
) -> tuple[Path, float]:
    """Fit ``recipe`` through ``zoo fit`` quietly, keeping the last checkpoint under ``run_dir/ckpt``.

    Args:
        recipe: the recipe file.
        run_dir: the trainer's root folder, where the override file and the checkpoint go.
        seed: the run's ``seed_everything``.
        max_epochs: the number of epochs.
        init_args: extra ``init_args`` per recipe section, e.g. ``{"model": {"num_bits": 32}}``.

    Returns:
        The last checkpoint and the minutes the fit took.
    """
    checkpoints = run_dir / "ckpt"
    override = {
        "seed_everything": seed,
        "trainer": {
            "max_epochs": max_epochs,
            "default_root_dir": str(run_dir),
            "logger": False,
            "enable_progress_bar": False,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(checkpoints), "save_last": True},
                }
            ],
        },
        **{section: {"init_args": args} for section, args in init_args.items()},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    start = time.perf_counter()
    if zoo_main(["fit", "--config", str(recipe), "--config", str(path)]) != 0:
        raise RuntimeError(f"zoo fit of {recipe} failed")
    return checkpoints / "last.ckpt", (time.perf_counter() - start) / 60


def eval_datamodule(datamodule_kwargs: dict[str, Any]) -> VideoDataModule:
    """Train and test splits with the eval transform and centre clips: ``val`` = train, ``test`` = test."""
    kwargs = {k: v for k, v in datamodule_kwargs.items() if k not in TRAIN_ONLY_KEYS}
    if all(datamodule_kwargs.get(f"{s}_manifest") is None for s in ("train", "val", "test")):
        from zoo.data import synthmotion

        config = synthmotion.SynthMotionConfig(**(datamodule_kwargs.get("synth") or {}))
        root = Path(datamodule_kwargs.get("synth_root") or synthmotion.default_root(config))
        synthmotion.generate(root, config, progress=False)
        kwargs.update(
            train_manifest=None, val_manifest=str(root / "train.csv"), test_manifest=str(root / "test.csv")
        )
    else:
        kwargs.update(
            val_manifest=datamodule_kwargs["train_manifest"],
            val_split=datamodule_kwargs.get("train_split", "train"),
            train_manifest=None,
        )
    return VideoDataModule(**{**kwargs, "num_views": 1, "drop_last": False})


def probe_scores(
    encoder: torch.nn.Module, train_loader, test_loader, num_classes: int, knn_k: int
) -> dict[str, float]:
    """Linear-probe (L-BFGS, weight decay 1e-3) and kNN top-1 of frozen ``encoder`` features, in percent."""
    train = extract_features(encoder, train_loader, description="train features")
    test = extract_features(encoder, test_loader, description="test features")
    linear = linear_probe(
        train.features, train.labels, test.features, test.labels, num_classes, weight_decay=1e-3
    )
    knn = knn_accuracy(
        train.features, train.labels, test.features, test.labels, k=knn_k, num_classes=num_classes
    )
    return {"linear_top1": linear.top1, "knn_top1": knn["top1"]}


def add_run_arguments(parser: argparse.ArgumentParser, out: Path, synth_root: bool = True) -> None:
    """Add ``--seed``, ``--threads``, ``--synth-root`` (unless told not to) and ``--out`` to ``parser``.

    Args:
        parser: the script's parser.
        out: the default report path.
        synth_root: whether to add ``--synth-root``.
    """
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    if synth_root:
        parser.add_argument("--synth-root", default=None, help="where to generate SynthMotion")
    parser.add_argument("--out", type=Path, default=out)


def write_report(path: Path, text: str) -> None:
    """Write the markdown report ``text`` to ``path`` (creating its folder) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
