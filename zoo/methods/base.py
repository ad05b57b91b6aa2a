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
* parameter groups with their own learning rate, weight decay or frozen flag (``param_groups``:
  a text tower at 1e-5 beside a video tower at 1e-2);
* momentum (EMA) encoders (:meth:`add_momentum_encoder`) and memory queues (:meth:`add_queue`),
  stepped and filled by the base after each optimiser step, saved in checkpoints;
* a whole-dataset pass every N epochs or steps (:meth:`dataset_pass_step`,
  :meth:`on_dataset_pass`: clustering, self-labelling) with label buffers indexed by the sample
  ``index`` (:meth:`add_label_buffer`), gathered across ranks and saved in checkpoints;
* a per-method validation hook (:meth:`ssl_validation_step`);
* training steps that return their probe features (``{"loss", "features"}``), which callbacks
  read from the step outputs;
* checkpoints that name their encoders (``zoo_encoders``), so :func:`load_encoder` rebuilds a
  plain backbone from any method checkpoint, and :func:`find_resume_checkpoint`, which picks the
  newest checkpoint of a run that loads completely (a file cut short by a killed process is skipped).

Constructor arguments are plain typed values, so the Lightning CLI builds any method from YAML
(``model: {class_path: zoo.methods.simclr.SimCLR, init_args: {...}}``).
"""

from __future__ import annotations

import fnmatch
import math
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo import registry
from zoo.data.batch import MissingBatchKeyError
from zoo.errors import UsageError
from zoo.eval.features import embed
from zoo.methods.memory import LabelBuffer, MemoryQueue, gather_by_index
from zoo.methods.momentum import MomentumEncoder
from zoo.methods.optim import OptimizerName, build_optimizer, param_groups, per_step_schedule
from zoo.run_checkpoints import CheckpointContentError, find_resume_checkpoint, load_encoder

__all__ = [
    "CheckpointContentError",
    "MissingBatchKeyError",
    "ParamGroup",
    "SSLMethod",
    "find_resume_checkpoint",
    "load_encoder",
    "samples_with_sound",
]


LRScaling = Literal["none", "linear", "sqrt"]


def samples_with_sound(batch: dict[str, Any], size: int, device: torch.device) -> torch.Tensor:
    """(B,) bool: samples whose spectrogram has sound (``audio_mask`` anywhere true; all without a mask)."""
    mask = batch.get("audio_mask")
    return mask.any(dim=-1) if mask is not None else torch.ones(size, dtype=torch.bool, device=device)


@dataclass
class ParamGroup:
    """Optimiser settings for the parameters whose names match ``match``.

    Args:
        match: an fnmatch pattern over parameter names, or a module prefix (``encoders.text``
            matches ``encoders.text.*``).
        lr: this group's peak learning rate (``None``: the method's scaled ``lr``).
        weight_decay: this group's weight decay (``None``: the method's).
        frozen: keep these parameters fixed (no gradient, not in the optimiser).
    """

    match: str
    lr: float | None = None
    weight_decay: float | None = None
    frozen: bool = False

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match) or name.startswith(self.match.rstrip(".") + ".")


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
        param_groups: per-parameter optimiser settings, first match wins (the rest: the defaults).
        momentum_tau: EMA coefficient τ of momentum encoders at the start of training.
        momentum_tau_final: τ at the end (cosine schedule from ``momentum_tau``).
        dataset_pass_every_n_epochs: run the whole-dataset pass at the start of every N-th epoch
            (0: never).
        dataset_pass_every_n_steps: run it every N optimiser steps instead (0: never).
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
        param_groups: list[ParamGroup] | None = None,
        momentum_tau: float = 0.996,
        momentum_tau_final: float = 1.0,
        dataset_pass_every_n_epochs: int = 0,
        dataset_pass_every_n_steps: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoders = nn.ModuleDict()
        # modality -> {"arch", "kwargs"}: saved in checkpoints, so load_encoder can rebuild the encoder
        self.encoder_specs: dict[str, dict[str, Any]] = {}
        self.probe: nn.Linear | None = None  # built with the probed encoder (add_encoder) or at setup
        self.momentum_encoders = nn.ModuleDict()
        self._momentum_online: dict[str, nn.Module] = {}  # the online twin of each momentum encoder
        self.queues = nn.ModuleDict()
        self.label_buffers = nn.ModuleDict()
        self._stepped_at = 0  # global step of the last after-step update (EMA, queues)
        self._dataset_pass_at: int | None = None  # global step of the last whole-dataset pass

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

    def add_momentum_encoder(self, name: str, online: nn.Module) -> MomentumEncoder:
        """An EMA copy of ``online``, updated by the base after every optimiser step (τ schedule)."""
        hp = self.hparams
        self.momentum_encoders[name] = MomentumEncoder(online, hp.momentum_tau, hp.momentum_tau_final)
        self._momentum_online[name] = online
        return self.momentum_encoders[name]

    def add_queue(self, name: str, size: int, dim: int) -> MemoryQueue:
        """A queue of ``size`` keys of dimension ``dim``; staged keys are enqueued after each step."""
        self.queues[name] = MemoryQueue(size, dim)
        return self.queues[name]

    def add_label_buffer(self, name: str, heads: int = 1) -> LabelBuffer:
        """A label per training sample (sized when training starts), written by dataset passes."""
        self.label_buffers[name] = LabelBuffer(0, heads)
        return self.label_buffers[name]

    def require(self, batch: dict[str, Any], key: str, hint: str = "") -> Any:
        """``batch[key]``, or an error naming the key, this method and the keys the batch has."""
        if key not in batch:
            raise MissingBatchKeyError(
                f"{type(self).__name__} needs batch key '{key}'; the batch has {sorted(batch)}"
                + (f" ({hint})" if hint else "")
            )
        return batch[key]

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

    def ssl_validation_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Method-specific validation: scalars to log under ``val/`` (the base logs none)."""
        return {}

    def dataset_pass_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Per-sample outputs (B, ...) of one batch of the whole-dataset pass (override to use one)."""
        raise NotImplementedError(
            f"{type(self).__name__} schedules a dataset pass but has no dataset_pass_step"
        )

    def on_dataset_pass(self, outputs: dict[str, torch.Tensor]) -> None:
        """Use the pass's outputs: every key of :meth:`dataset_pass_step` over the whole training set,
        gathered from all ranks, sorted by ``outputs["index"]`` (each sample once)."""
        raise NotImplementedError(
            f"{type(self).__name__} schedules a dataset pass but has no on_dataset_pass"
        )

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
        if "index" in batch:
            return len(batch["index"])
        return next(len(v) for v in batch.values() if isinstance(v, torch.Tensor))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        batch = self.augment(batch)
        out = self.ssl_step(batch)
        loss = out["loss"]
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
        features = out["features"].detach() if "features" in out else None
        if self.probe is not None and "label" in batch and features is not None:
            logits = self.probe(features)
            probe_loss = F.cross_entropy(logits, batch["label"])
            self.train_top1(logits, batch["label"])
            self.log("train/online_loss", probe_loss, on_epoch=True, sync_dist=True, batch_size=bs)
            self.log("train/online_top1", self.train_top1, on_step=False, on_epoch=True, batch_size=bs)
            loss = loss + probe_loss
        self.log(
            "train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs
        )
        # callbacks (online kNN / linear evaluation) read the probe features from the step outputs
        return {"loss": loss} if features is None else {"loss": loss, "features": features}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        bs = self._batch_size(batch)
        for name, value in self.ssl_validation_step(batch).items():
            self.log(f"val/{name}", value, on_epoch=True, sync_dist=True, batch_size=bs)
        if self.probe is None or "label" not in batch:
            return
        logits = self.probe(self.features(batch))
        self.val_top1(logits, batch["label"])
        self.log("val/online_loss", F.cross_entropy(logits, batch["label"]), sync_dist=True, batch_size=bs)
        self.log("val/online_top1", self.val_top1, on_epoch=True, prog_bar=True, batch_size=bs)

    # --- after each optimiser step: momentum encoders, queues ------------------------------------------

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step == self._stepped_at:  # gradient accumulation: no optimiser step yet
            return
        self._stepped_at = self.global_step
        for name, target in self.momentum_encoders.items():
            tau = target.update(self._momentum_online[name], self.global_step, self.total_steps)
            self.log(f"train/tau_{name}", tau, on_step=True, on_epoch=False, batch_size=1)
        for queue in self.queues.values():
            queue.flush()

    # --- whole-dataset passes (clustering, self-labelling) -------------------------------------------

    def on_train_start(self) -> None:
        if self.label_buffers:
            num_samples = len(self.trainer.train_dataloader.dataset)
            for buffer in self.label_buffers.values():
                buffer.resize(num_samples)  # no-op when a checkpoint restored them at this size
        self._stepped_at = self.global_step

    def on_train_epoch_start(self) -> None:
        every = self.hparams.dataset_pass_every_n_epochs
        if every and self.current_epoch % every == 0:
            self.run_dataset_pass()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        every = self.hparams.dataset_pass_every_n_steps
        if every and self.global_step % every == 0 and self._dataset_pass_at != self.global_step:
            self.run_dataset_pass()

    def dataset_pass_dataloader(self) -> Any:
        """The loader of the pass: the data module's ``dataset_pass_dataloader()`` if it has one
        (e.g. centre clips without augmentation), else its training loader."""
        datamodule = self.trainer.datamodule
        make = getattr(datamodule, "dataset_pass_dataloader", None) or datamodule.train_dataloader
        return make()

    @torch.no_grad()
    def run_dataset_pass(self) -> dict[str, torch.Tensor]:
        """Run :meth:`dataset_pass_step` over the whole training set (every rank its shard, in eval
        mode), gather by sample index and hand the result to :meth:`on_dataset_pass`."""
        self._dataset_pass_at = self.global_step
        was_training = self.training
        self.eval()
        chunks: dict[str, list[torch.Tensor]] = {}
        loader = self.dataset_pass_dataloader()
        progress = getattr(self.trainer, "progress_bar_callback", None) is not None and self.global_rank == 0
        from tqdm.auto import tqdm

        for batch in tqdm(loader, desc="dataset pass", disable=not progress, leave=False):
            batch = move_data_to_device(batch, self.device)
            index = self.require(batch, "index", "a dataset pass addresses samples by their index")
            for key, value in {"index": index, **self.dataset_pass_step(batch)}.items():
                chunks.setdefault(key, []).append(value.detach())
        self.train(was_training)
        index = torch.cat(chunks.pop("index"))
        outputs = gather_by_index(index, **{k: torch.cat(v) for k, v in chunks.items()})
        self.on_dataset_pass(outputs)
        return outputs

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

    def _grouped_parameters(self) -> list[dict[str, Any]]:
        """Optimiser groups: each ``param_groups`` spec (first match wins), then the rest; frozen
        specs switch their parameters' gradients off and leave them out."""
        hp = self.hparams
        specs = [s if isinstance(s, ParamGroup) else ParamGroup(**s) for s in hp.param_groups or ()]
        probe_ids = {id(p) for p in self.probe.parameters()} if self.probe is not None else set()
        buckets: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(len(specs) + 1)]
        for name, p in self.named_parameters():
            if id(p) in probe_ids:
                continue
            i = next((i for i, spec in enumerate(specs) if spec.matches(name)), len(specs))
            buckets[i].append((name, p))
        groups = []
        for spec, named in zip([*specs, None], buckets):
            if spec is not None and not named:
                raise UsageError(
                    f"param_groups: '{spec.match}' matches no parameter of {type(self).__name__} "
                    f"(its modules: {sorted(n for n, _ in self.named_children())})"
                )
            if spec is not None and spec.frozen:
                for _, p in named:
                    p.requires_grad_(False)
                continue
            options = {} if spec is None or spec.lr is None else {"lr": spec.lr}
            decay = hp.weight_decay if spec is None or spec.weight_decay is None else spec.weight_decay
            groups += param_groups(named, decay, hp.exclude_bias_and_norm, **options)
        return groups

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = self._grouped_parameters()
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
