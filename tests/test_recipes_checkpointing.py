"""Every shipped recipe checkpoints mid-epoch, so a preempted job loses at most N steps, and ``--ckpt_path
last`` (or :func:`zoo.run_checkpoints.find_resume_checkpoint`) resumes from the newer of the epoch-end and
the mid-epoch file."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from zoo.run_checkpoints import find_resume_checkpoint

RECIPES = sorted((Path(__file__).parents[1] / "configs").glob("*/*.yaml"))


def _checkpoint_callbacks(recipe: Path) -> list[dict]:
    callbacks = yaml.safe_load(recipe.read_text())["trainer"].get("callbacks", [])
    return [c.get("init_args", {}) for c in callbacks if c["class_path"].endswith(".ModelCheckpoint")]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_saves_a_mid_epoch_checkpoint_beside_the_epoch_end_one(recipe):
    epoch_end, mid_epoch = _checkpoint_callbacks(recipe)
    assert epoch_end.get("save_last") is True and not epoch_end.get("every_n_train_steps")
    assert mid_epoch["every_n_train_steps"] >= 1 and mid_epoch["save_top_k"] == 1
    assert "last" in mid_epoch["filename"]  # what Lightning's --ckpt_path last looks among
    assert mid_epoch.get("dirpath") == epoch_end.get("dirpath")


class _Preempted(Exception):
    pass


class _PreemptAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise _Preempted


def _trainer(recipe: Path, directory: Path, every_n_train_steps: int, *callbacks: Callback) -> L.Trainer:
    """A trainer with the recipe's two checkpoint callbacks in ``directory`` (N shrunk for the test)."""
    epoch_end, mid_epoch = _checkpoint_callbacks(recipe)
    mid_epoch = {**mid_epoch, "every_n_train_steps": every_n_train_steps}
    checkpoints = [ModelCheckpoint(**{**args, "dirpath": directory}) for args in (epoch_end, mid_epoch)]
    return L.Trainer(
        max_epochs=4,
        limit_train_batches=9,
        limit_val_batches=1,
        callbacks=[*checkpoints, *callbacks],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def test_a_preempted_run_resumes_from_the_mid_epoch_checkpoint(tmp_path):
    recipe = next(r for r in RECIPES if r.parent.name == "simclr" and r.stem == "synthmotion")
    with pytest.raises(_Preempted):  # killed at step 23, in the third epoch (steps 19-27)
        _trainer(recipe, tmp_path, 10, _PreemptAt(23)).fit(BoringModel())
    steps = {p.name: torch.load(p, weights_only=False)["global_step"] for p in tmp_path.glob("*.ckpt")}
    assert steps["last.ckpt"] == 18 and steps["last-mid-epoch.ckpt"] == 20
    assert find_resume_checkpoint(tmp_path).name == "last-mid-epoch.ckpt"
    resumed = _trainer(recipe, tmp_path, 10)
    resumed.fit(BoringModel(), ckpt_path="last")
    assert Path(resumed.ckpt_path).name == "last-mid-epoch.ckpt"  # 2 steps lost, not 5
    assert resumed.global_step == 36
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 36  # the end is kept
