"""Supervised video classification: train, fine-tune from a catalog entry, multi-view test.

``VideoClassifier`` wraps any registered video backbone. Fine-tuning starts from a catalog entry
(``init_from="motionformer-k400"``) or a weights file/folder, with a freshly initialised head for
the new classes. Training: cross-entropy with optional label smoothing and mixup, AdamW/SGD with
warm-up + cosine, optional layer-wise learning-rate decay. Testing: top-1/top-5 over the views of
``batch["video_views"]`` (temporal clips x spatial crops), softmax scores averaged as in the
Motionformer/SlowFast protocol. Under Lightning's ``ModelParallelStrategy`` the backbone is sharded with
FSDP2 (``configure_model``): one unit per transformer block, then the rest (docs/scale.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from zoo import registry
from zoo.api import choose_tower, load_pretrained, pretrained_arch_args
from zoo.catalog import Paper, get_entry
from zoo.errors import UsageError
from zoo.methods.optim import OptimizerName, build_optimizer, param_groups, per_step_schedule

_EMBEDDING_KEYS = ("patch_embed", "cls_token", "pos_embed", "temp_embed", "stem", "conv1", "bn1")


def layer_id(name: str, num_layers: int) -> int:
    """Depth of parameter ``name`` for layer-wise lr decay: embeddings 0, ``blocks.i`` i+1, the rest last."""
    if name.startswith(_EMBEDDING_KEYS):
        return 0
    match = re.match(r"(?:blocks|layers)\.(\d+)\.", name)
    return int(match.group(1)) + 1 if match else num_layers + 1


class VideoClassifier(LightningModule):
    """A registered backbone trained with cross-entropy.

    Args:
        backbone: registered architecture name (``zoo models --arch``).
        backbone_args: keyword arguments of its factory (``num_classes`` is set here).
        num_classes: classes of the head; None takes ``datamodule.num_classes`` at setup.
        init_from: catalog entry, weights file or published folder to start from; its head is
            replaced when the number of classes differs (or always, with ``reset_head``).
        init_tower: the tower to start from when ``init_from`` holds several (video, audio, ...);
            left out, the tower built from ``backbone``.
        reset_head: re-initialise the head even when the classes match (a clean transfer).
        label_smoothing: cross-entropy smoothing ε.
        mixup_alpha: Beta(α, α) mixing of pairs of clips and their labels; 0 disables it.
        optimizer: the optimiser, ``adamw`` or ``sgd`` typically.
        lr: peak learning rate.
        weight_decay: L2 coefficient.
        momentum: SGD momentum.
        layer_decay: lr multiplier per layer from the top (1.0: off), e.g. 0.75 for ViT fine-tuning.
        warmup_epochs: length of the per-step linear warm-up (may be fractional), then cosine decay.
        min_lr_ratio: final learning rate as a fraction of the peak.
        reshard_after_forward: under ``ModelParallelStrategy``, free each block's gathered weights after
            its forward and gather them again for the backward (FSDP's full sharding); False keeps them
            until the backward (``SHARD_GRAD_OP``: less communication, more memory).
    """

    paper = Paper(
        "Keeping Your Eye on the Ball: Trajectory Attention in Video Transformers (NeurIPS 2021)",
        "https://arxiv.org/abs/2106.05392",
    )  # the supervised recipe of the Motionformer checkpoints
    checkpoints = "motionformer-*"  # catalog entries trained with this method

    def __init__(
        self,
        backbone: str = "motionformer_tiny",
        backbone_args: dict[str, Any] | None = None,
        num_classes: int | None = None,
        init_from: str | None = None,
        init_tower: str | None = None,
        reset_head: bool = False,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        momentum: float = 0.9,
        layer_decay: float = 1.0,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        reshard_after_forward: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        registry.get_factory(backbone)  # fail early on a misspelt name
        if init_from and not Path(init_from).exists():
            get_entry(init_from)
        self.model: nn.Module | None = None
        self._init_loaded = False
        if num_classes:
            self._build(num_classes)

    # --- model -------------------------------------------------------------------------------------

    def _build(self, num_classes: int) -> None:
        hp = self.hparams
        args = {**(hp.backbone_args or {}), "num_classes": num_classes}
        if hp.init_from:  # the checkpoint's architecture arguments first (weights: load_init_weights)
            args = {**pretrained_arch_args(hp.backbone, hp.init_from, hp.init_tower), **args}
        self.model = registry.build(hp.backbone, **args)
        self.metrics = nn.ModuleDict(
            {
                f"{split}_top{k}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
                for split in ("train", "val", "test")
                for k in (1, min(5, num_classes))
            }
        )

    def configure_model(self) -> None:
        """Shard the backbone over the ranks with FSDP2 when the strategy gives a device mesh.

        Each of the backbone's ``blocks`` becomes a unit whose weights are gathered only around its own
        forward and backward; the root unit holds the rest (embeddings, final norm, head). The weights
        are loaded (``init_from``) in ``setup``, before this. Without a mesh (one process, DDP) nothing
        changes.
        """
        mesh = self.device_mesh
        if mesh is None:
            return
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(self.model, FSDPModule):  # sharded already (fit, then test)
            return
        if mesh["tensor_parallel"].size() != 1:
            raise UsageError(
                "VideoClassifier shards over data_parallel only: set the ModelParallelStrategy's "
                f"tensor_parallel_size: 1 and data_parallel_size: {mesh.size()} (devices x num_nodes)"
            )
        blocks = getattr(self.model, "blocks", None)
        if blocks is None:
            raise UsageError(
                f"model.init_args.backbone {self.hparams.backbone!r} has no `blocks` to shard with FSDP"
            )
        shard_mesh = mesh["data_parallel"]
        reshard = self.hparams.reshard_after_forward
        for block in blocks:
            fully_shard(block, mesh=shard_mesh, reshard_after_forward=reshard)
        fully_shard(self.model, mesh=shard_mesh, reshard_after_forward=reshard)

    def load_init_weights(self) -> None:
        """Load ``init_from`` into the backbone; a new head when the classes differ or ``reset_head``.

        Called at the start of ``fit``, and not when a run resumes from (or a test reloads) a checkpoint,
        which holds every weight already: the original checkpoint is not fetched again.
        """
        hp = self.hparams
        load_pretrained(
            self.model, hp.init_from, tower=choose_tower(hp.init_from, hp.backbone, hp.init_tower)
        )
        if self.hparams.reset_head:
            self.model.reset_classifier(self.hparams.num_classes)
        self._init_loaded = True

    def setup(self, stage: str) -> None:
        if self.model is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            num_classes = getattr(datamodule, "num_classes", 0)
            if not num_classes:
                raise ValueError("VideoClassifier needs num_classes (or a datamodule that knows it)")
            self.hparams.num_classes = int(num_classes)  # saved with checkpoints
            self._build(int(num_classes))
        fresh_run = self.trainer is not None and self.trainer.ckpt_path is None
        if stage == "fit" and self.hparams.init_from and fresh_run and not self._init_loaded:
            self.load_init_weights()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of clips (B, C, T, H, W)."""
        return self.model(video)

    def predict_views(self, batch: dict[str, Any]) -> torch.Tensor:
        """Class probabilities (B, classes), averaged over ``video_views`` when present."""
        if "video_views" in batch:
            views = batch["video_views"]  # (B, V, C, T, H, W)
            probs = self(views.flatten(0, 1)).softmax(-1)  # (B·V, classes)
            return probs.unflatten(0, views.shape[:2]).mean(1)
        return self(batch["video"]).softmax(-1)

    # --- steps -------------------------------------------------------------------------------------

    def _mix(self, video: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup (Zhang et al. 2018): convex pairs of clips and of one-hot targets."""
        lam = float(torch.distributions.Beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha).sample())
        perm = torch.randperm(video.shape[0], device=video.device)
        return lam * video + (1 - lam) * video[perm], lam * target + (1 - lam) * target[perm]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video, label = batch["video"], batch["label"]
        target = F.one_hot(label, self.hparams.num_classes).float()
        if self.hparams.mixup_alpha > 0:
            video, target = self._mix(video, target)
        logits = self(video)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self._log_metrics("train", logits, label, loss)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        probs = self.predict_views(batch)
        self._log_metrics(
            "val", probs, batch["label"], F.nll_loss(probs.clamp_min(1e-8).log(), batch["label"])
        )

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        probs = self.predict_views(batch)
        self._log_metrics(
            "test", probs, batch["label"], F.nll_loss(probs.clamp_min(1e-8).log(), batch["label"])
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self.predict_views(batch)

    def _log_metrics(self, split: str, scores: torch.Tensor, label: torch.Tensor, loss: torch.Tensor) -> None:
        bs = label.shape[0]
        self.log(
            f"{split}/loss",
            loss,
            prog_bar=split != "test",
            on_step=split == "train",
            on_epoch=True,
            batch_size=bs,
            sync_dist=split != "train",
        )
        for name, metric in self.metrics.items():
            if name.startswith(split):
                metric(scores, label)
                self.log(
                    f"{split}/{name.split('_')[1]}",
                    metric,
                    prog_bar=name.endswith("top1"),
                    on_step=False,
                    on_epoch=True,
                    batch_size=bs,
                )

    # --- optimisation --------------------------------------------------------------------------------

    def _param_groups(self) -> list[dict[str, Any]]:
        hp = self.hparams
        named = list(self.model.named_parameters())
        no_decay = self.model.no_weight_decay() if hasattr(self.model, "no_weight_decay") else ()
        if hp.layer_decay == 1.0:
            return param_groups(named, hp.weight_decay, no_decay_names=no_decay)
        num_layers = len(getattr(self.model, "blocks", getattr(self.model, "layers", [])))
        if num_layers == 0:
            raise ValueError(
                f"layer_decay needs a backbone with `blocks` or `layers`; {hp.backbone} has neither"
            )
        by_layer: dict[int, list[tuple[str, torch.Tensor]]] = {}
        for name, p in named:
            by_layer.setdefault(layer_id(name, num_layers), []).append((name, p))
        groups = []
        for depth, params in sorted(by_layer.items()):
            scale = hp.layer_decay ** (num_layers + 1 - depth)
            groups += param_groups(params, hp.weight_decay, no_decay_names=no_decay, lr=hp.lr * scale)
        return groups

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = build_optimizer(hp.optimizer, self._param_groups(), hp.lr, hp.momentum)
        schedule = per_step_schedule(optimizer, self.trainer, hp.warmup_epochs, hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
