"""What every self-supervised method shares: encoders, optimiser and schedule, online probe, logging.

A method subclasses :class:`SSLMethod`, builds its encoders with :meth:`SSLMethod.add_encoder`
(any registered backbone, by name), its heads, and implements :meth:`SSLMethod.ssl_step` — views
in, ``{"loss": ..., "features": ...}`` out. Everything else is here:

* batches are dicts: ``video`` (B, C, T, H, W), ``video_views`` (B, K, C, T, H, W), ``image``,
  ``image_views``, ``audio``, ``text``, ``label``, ``index``;
* the optimiser (LARS, SGD, AdamW, Adam; biases and norm parameters excluded from weight decay
  and LARS adaptation), the learning-rate scaling with the global batch (SimCLR: linear
  ``lr·B/256`` or ``lr·√B``) and a per-step linear warm-up + cosine schedule;
* an online linear probe on detached features (trained with the method, reported as
  ``train/online_top1`` and ``val/online_top1``), which does not change the encoder;
* :meth:`augment` — a hook for method-specific augmentation of training batches on the device;
* checkpoints that name their encoders (``zoo_encoders``), so :func:`load_encoder` rebuilds a
  plain backbone from any method checkpoint, and :func:`find_resume_checkpoint`, which picks the
  newest checkpoint of a run that loads completely (a file cut short by a killed process is skipped).

Constructor arguments are plain typed values, so the Lightning CLI builds any method from YAML
(``model: {class_path: zoo.methods.simclr.SimCLR, init_args: {...}}``).
"""

from __future__ import annotations

import logging
import math
import zipfile
from abc import ABCMeta, abstractmethod
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo import registry
from zoo.eval.features import embed
from zoo.methods.optim import OptimizerName, build_optimizer, param_groups, per_step_schedule
from zoo.serialization import safe_torch_load, strip_prefix

__all__ = ["SSLMethod", "find_resume_checkpoint", "load_encoder"]

log = logging.getLogger(__name__)

LRScaling = Literal["none", "linear", "sqrt"]


class SSLMethod(LightningModule, metaclass=ABCMeta):
    """Base class of the self-supervised methods.

    Args:
        num_classes: classes of the online probe; ``None`` takes ``datamodule.num_classes`` at setup.
        online_probe: train a linear classifier on detached features alongside the method.
        probe_modality: the encoder the probe (and evaluation callbacks) read, by default the
            first one added; its batch key is the modality name (``video`` → ``batch["video"]``).
        probe_lr: learning rate of the probe (no weight decay, no LARS adaptation).
        optimizer: ``lars``, ``sgd``, ``adamw`` or ``adam``.
        lr: base learning rate (before ``lr_scaling``).
        lr_scaling: ``none``; ``linear``: ``lr·B/reference_batch_size``; ``sqrt``: ``lr·√B`` (SimCLR
            TF), with B the global batch (per-device batch × devices × accumulation).
        reference_batch_size: the B of the ``linear`` rule (256 in SimCLR).
        weight_decay: L2 coefficient (not applied to biases and norm parameters).
        momentum: SGD/LARS momentum.
        betas: Adam(W) betas.
        lars_eta: LARS trust coefficient η.
        exclude_bias_and_norm: keep 1-D parameters out of weight decay and LARS adaptation.
        warmup_epochs: linear warm-up length (may be fractional), then cosine decay per step.
        min_lr_ratio: final learning rate as a fraction of the peak.
        gather_distributed: contrastive candidates from every rank (no-op on one process).
    """

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        online_probe: bool = True,
        probe_modality: str | None = None,
        probe_lr: float = 0.1,
        optimizer: OptimizerName = "lars",
        lr: float = 0.3,
        lr_scaling: LRScaling = "none",
        reference_batch_size: int = 256,
        weight_decay: float = 1e-6,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        lars_eta: float = 0.001,
        exclude_bias_and_norm: bool = True,
        warmup_epochs: float = 10.0,
        min_lr_ratio: float = 0.0,
        gather_distributed: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoders = nn.ModuleDict()
        # modality -> {"arch", "kwargs"}: saved in checkpoints, so load_encoder can rebuild the encoder
        self.encoder_specs: dict[str, dict[str, Any]] = {}
        self.probe: nn.Linear | None = None  # built with the probed encoder (add_encoder) or at setup
        self.last_features: torch.Tensor | None = None  # detached probe features of the last training batch

    # --- building blocks for subclasses -------------------------------------------------------

    def add_encoder(self, modality: str, name: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
        """Build registered backbone ``name`` without classifier and register it under ``modality``."""
        encoder = registry.build(name, **{"num_classes": 0, **(kwargs or {})})
        self.encoders[modality] = encoder
        self.encoder_specs[modality] = {"arch": name, "kwargs": dict(kwargs or {})}
        hp = self.hparams
        if hp.probe_modality is None:
            hp.probe_modality = modality
        if modality == hp.probe_modality and hp.online_probe and hp.num_classes:
            self._build_probe(hp.num_classes)
        return encoder

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, F) of the ``modality`` encoder."""
        return embed(self.encoders[modality], x)

    def features(self, batch: dict[str, Any]) -> torch.Tensor:
        """The representation evaluated by the probe and the eval callbacks (B, F)."""
        modality = self.hparams.probe_modality
        return self.embed(modality, batch[modality])

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (for schedules such as the EMA τ)."""
        return int(self.trainer.estimated_stepping_batches)

    @abstractmethod
    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The method: return ``{"loss": scalar, "features": (B, F) probe features}`` (+ scalars to log)."""

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Method-specific augmentation of a training batch on its device, before :meth:`ssl_step`.

        Generic augmentations on the device come from the data module (``VideoDataModule(
        device_transforms=True)`` applies the ``train_transform`` preset there); methods whose views
        need more (mixing frames, warping) override this. The base class leaves batches unchanged.
        """
        return batch

    # --- online probe ----------------------------------------------------------------------------

    def _build_probe(self, num_classes: int) -> None:
        num_features = self.encoder_num_features(self.hparams.probe_modality)
        self.probe = nn.Linear(num_features, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, average="micro")

    def encoder_num_features(self, modality: str) -> int:
        return int(self.encoders[modality].num_features)

    def setup(self, stage: str) -> None:
        if self.probe is not None or not self.hparams.online_probe:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        num_classes = self.hparams.num_classes or getattr(datamodule, "num_classes", None)
        if num_classes:
            self.hparams.num_classes = int(num_classes)  # saved with checkpoints: reloads build the probe
            self._build_probe(int(num_classes))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["zoo_encoders"] = {
            m: {**spec, "probe": m == self.hparams.probe_modality} for m, spec in self.encoder_specs.items()
        }

    # --- Lightning hooks ---------------------------------------------------------------------------

    @staticmethod
    def _batch_size(batch: dict[str, Any]) -> int:
        return next(len(v) for v in batch.values() if isinstance(v, torch.Tensor))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        batch = self.augment(batch)
        out = self.ssl_step(batch)
        loss = out["loss"]
        self.last_features = out["features"].detach() if "features" in out else None
        bs = self._batch_size(batch)
        for name, value in out.items():
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                self.log(
                    f"train/{name}",
                    value,
                    prog_bar=name == "loss",
                    on_epoch=True,
                    sync_dist=True,
                    batch_size=bs,
                )
        if self.probe is not None and "label" in batch and "features" in out:
            logits = self.probe(out["features"].detach())
            probe_loss = F.cross_entropy(logits, batch["label"])
            self.train_top1(logits, batch["label"])
            self.log("train/online_loss", probe_loss, on_epoch=True, sync_dist=True, batch_size=bs)
            self.log("train/online_top1", self.train_top1, on_step=False, on_epoch=True, batch_size=bs)
            loss = loss + probe_loss
        self.log(
            "train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs
        )
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.probe is None or "label" not in batch:
            return
        logits = self.probe(self.features(batch))
        bs = self._batch_size(batch)
        self.val_top1(logits, batch["label"])
        self.log("val/online_loss", F.cross_entropy(logits, batch["label"]), sync_dist=True, batch_size=bs)
        self.log("val/online_top1", self.val_top1, on_epoch=True, prog_bar=True, batch_size=bs)

    # --- optimisation --------------------------------------------------------------------------------

    def global_batch_size(self) -> int:
        batch_size = getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
        if batch_size is None:
            raise ValueError("lr_scaling needs the per-device batch size as datamodule.batch_size")
        return int(batch_size) * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def scaled_lr(self) -> float:
        hp = self.hparams
        if hp.lr_scaling == "none":
            return hp.lr
        if hp.lr_scaling == "linear":
            return hp.lr * self.global_batch_size() / hp.reference_batch_size
        if hp.lr_scaling == "sqrt":
            return hp.lr * math.sqrt(self.global_batch_size())
        raise ValueError(f"lr_scaling must be none, linear or sqrt; got {hp.lr_scaling!r}")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        probe_ids = {id(p) for p in self.probe.parameters()} if self.probe is not None else set()
        method_params = [(n, p) for n, p in self.named_parameters() if id(p) not in probe_ids]
        groups = param_groups(method_params, hp.weight_decay, hp.exclude_bias_and_norm)
        if self.probe is not None:
            groups.append(
                {
                    "params": list(self.probe.parameters()),
                    "lr": hp.probe_lr,
                    "weight_decay": 0.0,
                    "lars_exclude": True,
                }
            )
        optimizer = build_optimizer(
            hp.optimizer, groups, self.scaled_lr(), hp.momentum, tuple(hp.betas), hp.lars_eta
        )
        schedule = per_step_schedule(optimizer, self.trainer, hp.warmup_epochs, hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


# --- checkpoints -------------------------------------------------------------------------------------


class CheckpointContentError(KeyError):
    """A checkpoint without what was asked of it (not a zoo method checkpoint, or no such encoder)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


REQUIRED_CHECKPOINT_KEYS = ("state_dict", "epoch", "global_step", "loops", "optimizer_states")


def _is_complete(path: Path) -> bool:
    """Every zip member passes its CRC and the training state is there."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("a member fails its CRC check")
        checkpoint = safe_torch_load(path)
    except Exception as exc:  # any unreadable file is skipped, whatever the reason
        log.warning("skipping unreadable checkpoint %s (%s: %s)", path, type(exc).__name__, exc)
        return False
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_CHECKPOINT_KEYS):
        log.warning("skipping incomplete checkpoint %s", path)
        return False
    return True


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The newest (by modification time) ``*.ckpt`` under ``directory`` that loads completely.

    Lightning's ``ModelCheckpoint`` files are zip archives written in one transaction; this check
    also covers files cut short by a crash, a full disk or a copy: every archive member must pass
    its CRC and the training state (weights, optimiser, loops) must be there. ``None`` when no file
    qualifies (start from scratch).
    """
    files = sorted(Path(directory).glob("**/*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((path for path in files if _is_complete(path)), None)


def load_encoder(checkpoint_path: str | Path, modality: str | None = None) -> nn.Module:
    """The ``modality`` encoder (default: the probed one) of a method checkpoint, as a plain backbone.

    The returned module has no classifier (``num_classes=0``) and is in eval mode.
    """
    checkpoint = safe_torch_load(checkpoint_path)
    specs = checkpoint.get("zoo_encoders")
    if not specs:
        raise CheckpointContentError(
            f"{checkpoint_path} has no 'zoo_encoders' entry: not a zoo method checkpoint"
        )
    if modality is None:
        modality = next((m for m, s in specs.items() if s.get("probe")), next(iter(specs)))
    if modality not in specs:
        raise CheckpointContentError(f"{checkpoint_path}: no '{modality}' encoder; it has {sorted(specs)}")
    spec = specs[modality]
    encoder = registry.build(spec["arch"], **{"num_classes": 0, **spec["kwargs"]})
    prefix = f"encoders.{modality}."
    state = strip_prefix(checkpoint["state_dict"], prefix)
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()
