"""SimCLR trains on CPU: a tiny Trainer fit on random clips lowers the NT-Xent loss; the method's
pieces (views → f → g → NT-Xent, online probe, optimiser groups, LR schedule, export) behave."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.methods.optim import LARS
from zoo.methods.simclr import SimCLR
from zoo.objectives.infonce import nt_xent_loss
from zoo.run_checkpoints import load_encoder


class EpochSampler(Sampler[int]):
    """Shuffles with seed + epoch (Lightning calls ``set_epoch``); yields ``epoch * n + i``."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter((self.epoch * self.n + order).tolist())

    def __len__(self) -> int:
        return self.n


class RandomViews(Dataset):
    """Random base clips; a view is the base plus fresh noise seeded by (epoch, index)."""

    def __init__(
        self, n: int = 32, frames: int = 4, size: int = 16, num_classes: int = 4, noise: float = 0.5
    ):
        self.base = torch.randn(n, 3, frames, size, size, generator=torch.Generator().manual_seed(123))
        self.n, self.num_classes, self.noise = n, num_classes, noise

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> dict:
        i = key % self.n
        noise = torch.randn(2, *self.base.shape[1:], generator=torch.Generator().manual_seed(key))
        return {
            "video": self.base[i],
            "video_views": self.base[i] + self.noise * noise,  # (K=2, C, T, H, W)
            "label": i % self.num_classes,
            "index": i,
        }


class RandomViewsDataModule(L.LightningDataModule):
    def __init__(self, n: int = 32, batch_size: int = 8, **kwargs):
        super().__init__()
        self.dataset = RandomViews(n, **kwargs)
        self.batch_size = batch_size
        self.num_classes = self.dataset.num_classes

    def train_dataloader(self):
        return DataLoader(
            self.dataset, self.batch_size, sampler=EpochSampler(len(self.dataset)), drop_last=True
        )

    def val_dataloader(self):
        return DataLoader(self.dataset, self.batch_size)


def tiny_simclr(**overrides) -> SimCLR:
    args = dict(
        encoder="r3d_tiny",
        proj_hidden_dim=32,
        proj_output_dim=16,
        temperature=0.2,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=1e-4,
        warmup_epochs=0.5,
    )
    return SimCLR(**{**args, **overrides})


class LossHistory(L.Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(trainer.callback_metrics["train/loss_step"]))


def test_fit_lowers_the_loss_and_trains_the_probe(tmp_path):
    torch.manual_seed(0)
    model, history = tiny_simclr(), LossHistory()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[history],
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, RandomViewsDataModule())
    first, last = sum(history.losses[:4]) / 4, sum(history.losses[-4:]) / 4
    assert last < first - 0.3, (first, last)
    assert model.probe is not None and model.hparams.num_classes == 4  # taken from the datamodule
    assert "val/online_top1" in trainer.callback_metrics
    # the checkpoint names its encoder: a plain backbone comes back from it
    path = tmp_path / "simclr.ckpt"
    trainer.save_checkpoint(path)
    encoder = load_encoder(path)
    x = torch.randn(2, 3, 4, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(
            encoder.forward_head(encoder.forward_features(x), pre_logits=True), model(x), atol=1e-6
        )
    reloaded = SimCLR.load_from_checkpoint(path, weights_only=True)
    assert reloaded.probe is not None


def test_ssl_step_is_nt_xent_of_projected_views():
    torch.manual_seed(0)
    model = tiny_simclr(view_reduction="sum").eval()
    views = torch.randn(3, 2, 3, 4, 16, 16)
    out = model.ssl_step({"video_views": views})
    with torch.no_grad():
        h = torch.stack([model(views[:, k]) for k in range(2)], 1)  # (B, K, F)
        z = model.projector(h.flatten(0, 1)).reshape(3, 2, -1)
        assert torch.allclose(out["loss"], nt_xent_loss(z, 0.2, view_reduction="sum"), atol=1e-5)
        assert torch.allclose(out["features"], h[:, 0], atol=1e-5)


def test_image_variant():
    torch.manual_seed(0)
    model = tiny_simclr(encoder="resnet18", modality="image")
    out = model.ssl_step({"image_views": torch.randn(2, 3, 3, 32, 32)})  # (B, K=3, C, H, W)
    assert out["loss"].ndim == 0 and out["features"].shape == (2, 512)
    assert model.hparams.probe_modality == "image"


class Flipped(SimCLR):
    """A method-specific device augmentation: flips the second view, counts the batches it saw."""

    seen = 0

    def augment(self, batch):
        self.seen += 1
        views = batch["video_views"].clone()
        views[:, 1] = views[:, 1].flip(-1)
        return {**batch, "video_views": views}


def test_augment_hook_runs_on_training_batches_only(tmp_path):
    model = Flipped(encoder="r3d_tiny", proj_hidden_dim=16, proj_output_dim=8, optimizer="adamw", lr=1e-3)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, RandomViewsDataModule(n=16, batch_size=8))  # 2 train + 2 val batches
    assert model.seen == 2


class LRHistory(L.Callback):
    def __init__(self):
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_optimiser_groups_and_schedule(tmp_path):
    model, history = tiny_simclr(optimizer="lars", lr=0.3, lr_scaling="linear", warmup_epochs=1), LRHistory()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        callbacks=[history],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, RandomViewsDataModule(n=32, batch_size=8))  # 4 steps per epoch
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, LARS)
    decayed, excluded, probe = optimizer.param_groups
    assert decayed["weight_decay"] == model.hparams.weight_decay and not decayed.get("lars_exclude", False)
    assert excluded["weight_decay"] == 0 and excluded["lars_exclude"]
    assert all(p.ndim <= 1 for p in excluded["params"]) and all(p.ndim > 1 for p in decayed["params"])
    assert {id(p) for p in probe["params"]} == {id(p) for p in model.probe.parameters()}
    peak = 0.3 * 8 / 256  # linear scaling with the global batch of 8
    lrs = history.lrs
    assert lrs[:4] == pytest.approx([peak * (i + 1) / 4 for i in range(4)])  # 1 warm-up epoch = 4 steps
    assert lrs[4] == pytest.approx(peak) and lrs[7] < lrs[5] < lrs[4]  # then cosine


CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "simclr"


def test_imagenet_recipe_builds():
    """The paper's image recipe parses and builds SimCLR-ResNet-50 (its data module is the user's)."""
    from jsonargparse import ArgumentParser

    recipe = yaml.safe_load((CONFIGS / "imagenet.yaml").read_text())
    parser = ArgumentParser()
    parser.add_subclass_arguments(L.LightningModule, "model")
    with torch.device("meta"):
        model = parser.instantiate(parser.parse_object({"model": recipe["model"]})).model
    assert (
        isinstance(model, SimCLR)
        and model.hparams.lr_scaling == "linear"
        and model.hparams.optimizer == "lars"
    )
    assert model.encoders["image"].num_features == 2048 and model.probe.out_features == 1000


@pytest.mark.slow
def test_learning_signal_on_synthmotion():
    """benchmarks/ssl_learning_signal.py, shortened: SimCLR features beat the untrained encoder's."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ssl_learning_signal.py"
    spec = importlib.util.spec_from_file_location("ssl_learning_signal", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    datamodule_kwargs = dict(
        num_frames=8,
        stride=4.0,
        size=32,
        num_views=2,
        view_clips="distinct",
        batch_size=32,
        num_workers=1,
        train_transform={"name": "simclr", "scale": (0.3, 1.0), "strength": 0.5},
    )
    result = bench.run_learning_signal(
        lambda: tiny_simclr(
            encoder_kwargs={"frame_difference": True},
            proj_hidden_dim=256,
            proj_output_dim=64,
            lr=2e-3,
            warmup_epochs=1,
            online_probe=False,
        ),
        datamodule_kwargs,
        budget=2.0,
    )
    assert result["trained"]["linear_top1"] > max(
        2 * result["chance"], result["untrained"]["linear_top1"] + 15
    )
    assert result["trained"]["knn_top1"] > result["untrained"]["knn_top1"] + 10
