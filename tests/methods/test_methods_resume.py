"""A SimCLR run killed with SIGKILL mid-epoch resumes from its last complete checkpoint and ends with
exactly the weights of an uninterrupted run (Lightning ``deterministic=True``, one CPU thread, an
epoch-seeded sampler and per-(epoch, sample) seeded views). A checkpoint file cut short is never
picked for the resume.

With the zoo's DataModules the checkpoint is taken every N steps and holds the loader's position
(:class:`~zoo.data.base.ResumableLoader`): a run killed mid-epoch resumes in the middle of that epoch and
still ends bit-identical, reading SynthMotion files or tar shards of them (two workers each).

Run as a script, this file is the training process that gets killed:
``python test_methods_resume.py OUT_DIR [files|shards DATA_DIR]`` prints ``step EPOCH BATCH`` after every
batch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

MAX_EPOCHS = 4
KILL_EPOCH = 2  # killed during this epoch, after its second batch
TIMEOUT_S = 60


def train(out_dir: Path, ckpt_path: Path | None = None, slow_s: float = 0.0) -> dict[str, torch.Tensor]:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from test_methods_simclr import RandomViewsDataModule, tiny_simclr

    class Report(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            print(f"step {trainer.current_epoch} {batch_idx}", flush=True)
            time.sleep(slow_s)

    L.seed_everything(0, workers=True, verbose=False)
    torch.set_num_threads(1)
    model = tiny_simclr(optimizer="lars", lr=2.0, warmup_epochs=1)
    trainer = L.Trainer(
        max_epochs=MAX_EPOCHS,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=out_dir,
        callbacks=[ModelCheckpoint(dirpath=out_dir, save_last=True, save_top_k=-1), Report()],
    )
    trainer.fit(model, RandomViewsDataModule(n=32, batch_size=8), ckpt_path=ckpt_path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    from zoo.run_checkpoints import find_resume_checkpoint

    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    process = subprocess.Popen(
        [sys.executable, __file__, str(killed_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).parent,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for line in process.stdout:
            if line.startswith("step") and tuple(map(int, line.split()[1:])) >= (KILL_EPOCH, 1):
                os.kill(process.pid, signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the training process did not reach the kill point in time")
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    saved = sorted(p.name for p in killed_dir.glob("*.ckpt"))
    assert "epoch=1-step=8.ckpt" in saved and not any("epoch=3" in name for name in saved), saved
    # a newer file cut short (as by a kill during a write) must never be chosen
    truncated = killed_dir / "epoch=2-step=10.ckpt"
    shutil.copy(killed_dir / "last.ckpt", truncated)
    with truncated.open("r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    os.utime(truncated, (time.time() + 10, time.time() + 10))
    resume_from = find_resume_checkpoint(killed_dir)
    assert resume_from is not None and resume_from.name in ("last.ckpt", "epoch=1-step=8.ckpt")
    at_resume = torch.load(resume_from, weights_only=True)
    assert at_resume["global_step"] == 8  # end of epoch 1

    previous = torch.are_deterministic_algorithms_enabled()
    try:
        resumed = train(killed_dir, ckpt_path=resume_from)
        uninterrupted = train(reference_dir)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert resumed.keys() == uninterrupted.keys()
    different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not different, different[:5]
    stem = "encoders.video.stem.0.weight"
    assert not torch.equal(at_resume["state_dict"][stem], resumed[stem])  # it did train after resuming


SYNTH = dict(
    size=32, num_frames=8, num_classes=3, train_per_class=8, val_per_class=1, test_per_class=1,
    long_videos=0, reid_identities=0, qa_per_clip=0, audio=False,
)  # fmt: skip
SYNTH_BATCHES = 6  # 24 training clips, 4 a batch
SYNTH_EPOCHS = 3
SYNTH_KILL = (1, 3)  # killed in epoch 1 after its fourth batch: its last checkpoint is mid-epoch (step 8)


def synth_datamodule(kind: str, data_dir: Path):
    from zoo.data.datamodule import VideoDataModule

    source = (
        dict(shards=str(data_dir / "shards" / "train.index.json"))
        if kind == "shards"
        else dict(synth=SYNTH, synth_root=str(data_dir / "synth"))
    )
    return VideoDataModule(
        **source, num_views=2, num_frames=4, size=16, batch_size=4, num_workers=2, shuffle_buffer=5
    )


def train_on_synthmotion(
    out_dir: Path, kind: str, data_dir: Path, ckpt_path: Path | None = None, slow_s: float = 0.0
) -> dict[str, torch.Tensor]:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from test_methods_simclr import tiny_simclr

    class Report(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            print(f"step {trainer.current_epoch} {batch_idx}", flush=True)
            time.sleep(slow_s)

    L.seed_everything(0, workers=True, verbose=False)
    torch.set_num_threads(1)
    trainer = L.Trainer(
        max_epochs=SYNTH_EPOCHS,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=out_dir,
        callbacks=[ModelCheckpoint(dirpath=out_dir, every_n_train_steps=2, save_top_k=-1), Report()],
    )
    trainer.fit(tiny_simclr(warmup_epochs=1), synth_datamodule(kind, data_dir), ckpt_path=ckpt_path)
    return {k: v.clone() for k, v in trainer.lightning_module.state_dict().items()}


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory) -> Path:
    from helpers import generate_synth

    from zoo.data.datamodule import VideoDataModule
    from zoo.data.shards import write_shards

    data_dir = tmp_path_factory.mktemp("resume_data")
    generate_synth(data_dir / "synth", SYNTH)
    records = VideoDataModule(synth=SYNTH, synth_root=str(data_dir / "synth")).records("train")
    write_shards(records, data_dir / "shards", "train", max_size=40_000, progress=False)  # a few per shard
    return data_dir


@pytest.mark.parametrize("kind", ["files", "shards"])
def test_killed_mid_epoch_resumes_mid_epoch_to_the_same_weights(tmp_path, synth_data, kind):
    from zoo.run_checkpoints import find_resume_checkpoint

    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    process = subprocess.Popen(
        [sys.executable, __file__, str(killed_dir), kind, str(synth_data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).parent,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for line in process.stdout:
            if line.startswith("step") and tuple(map(int, line.split()[1:])) >= SYNTH_KILL:
                os.kill(process.pid, signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the training process did not reach the kill point in time")
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    resume_from = find_resume_checkpoint(killed_dir)
    at_resume = torch.load(resume_from, weights_only=True)
    assert at_resume["global_step"] % SYNTH_BATCHES != 0, resume_from  # taken mid-epoch
    (loader_state,) = at_resume["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (loader_state["epoch"], loader_state["batches"]) == divmod(at_resume["global_step"], SYNTH_BATCHES)

    previous = torch.are_deterministic_algorithms_enabled()
    try:
        resumed = train_on_synthmotion(killed_dir, kind, synth_data, ckpt_path=resume_from)
        uninterrupted = train_on_synthmotion(reference_dir, kind, synth_data)
    finally:
        torch.use_deterministic_algorithms(previous)
    different = [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])]
    assert not different, different[:5]
    stem = "encoders.video.stem.0.weight"
    assert not torch.equal(at_resume["state_dict"][stem], resumed[stem])  # it did train after resuming


def test_no_checkpoint_means_start_from_scratch(tmp_path):
    from zoo.run_checkpoints import find_resume_checkpoint

    assert find_resume_checkpoint(tmp_path) is None
    (tmp_path / "broken.ckpt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert find_resume_checkpoint(tmp_path) is None


if __name__ == "__main__":
    if len(sys.argv) == 4:
        train_on_synthmotion(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), slow_s=0.3)
    else:
        train(Path(sys.argv[1]), slow_s=0.3)
