"""Video person re-identification by temporal residual learning (TRL) with ST²N alignment.

Dai, Zhang, Wang, Lu, Wang, IEEE TIP 28(3) 2019, https://arxiv.org/abs/1802.07918.

Method: a tracklet of T frames (one person, one camera) goes through a per-frame CNN; ST²N aligns each
frame with a spatial transform whose parameters come from the frame's high-level features and the temporal
context of the other frames; TRL's two bidirectional LSTMs give the generic and the frame-specific parts of
the tracklet, combined residually, and the frames are pooled into one embedding (:class:`~zoo.models.reid.ReIDNet`).
Training is supervised: identity classification plus a batch-hard triplet loss over P identities × K
tracklets (:class:`~zoo.data.datamodules.TrackletDataModule`). Evaluation ranks the gallery for every query
tracklet: CMC rank-1/5/10/20 and mAP with same-camera matches of the query's identity left out
(:func:`zoo.eval.reid.reid_metrics`); query and gallery identities are disjoint from the training ones.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.reid import reid_metrics
from zoo.methods.optim import OptimizerName, build_optimizer, param_groups, per_step_schedule
from zoo.models.reid import ReIDNet, TrackletTooShortError, TransformFamily
from zoo.objectives.ranking import batch_hard_triplet_loss

__all__ = ["TemporalResidualReID"]

RANKS = (1, 5, 10, 20)


class TemporalResidualReID(LightningModule):
    """TRL + ST²N trained with identity cross-entropy and a batch-hard triplet loss.

    Followed the paper (abstract): per-frame CNN features; two bidirectional LSTMs for the generic and the
    specific features of the tracklet; a spatial transformer with fewer parameters than a standard STN whose
    parameters come from the current frame's high-level features and the other frames' temporal context.

    Zoo's choices (the method, experiment and implementation sections were not available; each is a field):
    the backbone (the paper's is GoogLeNet per a secondary source; ``resnet18`` here); the residual
    combination z_t = mean_t g_t + r_t (``trl_generic``, ``trl_combine``); the temporal mean of z_t as the
    embedding (``temporal_pool``); ST²N as scale + translation of the input frame (``st2n_transform``),
    predicted by an MLP from [d_t; mean_{t'≠t} d_t'] where d_t is the backbone's pooled feature of the
    unwarped frame, the warp initialised to the identity; the losses (identity cross-entropy with a BN-neck
    plus a batch-hard triplet loss with margin 0.3, weights 1 and 1); Adam, lr 3e-4, warm-up + cosine; and a
    one-frame tracklet is an error (``single_frame``), since ST²N and TRL need other frames.

    Args:
        backbone: registered 2D backbone run on every frame.
        backbone_args: arguments of its factory.
        num_classes: training identities; None takes ``len(datamodule.classes)`` at setup.
        use_st2n: align frames with ST²N (off: the plain per-frame CNN).
        use_trl: temporal residual learning (off: the frame features are pooled directly).
        st2n_transform: ``scale_translation``, ``translation`` or ``affine`` (a standard STN's six).
        st2n_hidden_dim: width of ST²N's MLP.
        st2n_max_scale_change: largest relative change of scale of the warp.
        st2n_max_shift: largest shift of the warp (normalised coordinates).
        st2n_backbone_grad: let ST²N's localisation pass train the backbone too.
        trl_hidden_dim: hidden units per direction of each BiLSTM.
        trl_generic: ``mean`` (one generic part per tracklet) or ``per_frame``.
        trl_combine: ``sum`` (residual) or ``concat``.
        temporal_pool: ``mean`` or ``max`` of the frame descriptors.
        bn_neck: batch norm between the embedding and the identity classifier.
        id_loss_weight: weight of the identity cross-entropy.
        triplet_loss_weight: weight of the batch-hard triplet loss.
        triplet_margin: margin of the triplet loss (None: soft margin).
        label_smoothing: ε of the identity cross-entropy.
        metric: distance of the evaluation, ``euclidean`` or ``cosine``.
        single_frame: a tracklet of one frame (all sampled frames the same) is an ``error`` or is
            ``repeat``-ed (its copies are its temporal context).
        optimizer: ``adam``, ``adamw``, ``sgd`` or ``lars``.
        lr: peak learning rate.
        weight_decay: L2 coefficient.
        momentum: SGD momentum.
        warmup_epochs: linear warm-up length, then cosine decay.
        min_lr_ratio: final learning rate as a fraction of the peak.
    """

    paper = Paper(
        "Video Person Re-Identification by Temporal Residual Learning (IEEE TIP 2019)",
        "https://arxiv.org/abs/1802.07918",
    )
    checkpoints = None  # no published checkpoint: neither code nor weights were released

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_args: dict[str, Any] | None = None,
        num_classes: int | None = None,
        use_st2n: bool = True,
        use_trl: bool = True,
        st2n_transform: TransformFamily = "scale_translation",
        st2n_hidden_dim: int = 128,
        st2n_max_scale_change: float = 0.5,
        st2n_max_shift: float = 0.5,
        st2n_backbone_grad: bool = False,
        trl_hidden_dim: int = 256,
        trl_generic: Literal["mean", "per_frame"] = "mean",
        trl_combine: Literal["sum", "concat"] = "sum",
        temporal_pool: Literal["mean", "max"] = "mean",
        bn_neck: bool = True,
        id_loss_weight: float = 1.0,
        triplet_loss_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        label_smoothing: float = 0.0,
        metric: Literal["euclidean", "cosine"] = "euclidean",
        single_frame: Literal["error", "repeat"] = "error",
        optimizer: OptimizerName = "adam",
        lr: float = 3e-4,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        if single_frame not in ("error", "repeat"):
            raise UsageError(f"single_frame must be 'error' or 'repeat', got {single_frame!r}")
        if metric not in ("euclidean", "cosine"):
            raise UsageError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
        self.model: ReIDNet | None = None
        self._eval_outputs: dict[int, list[dict[str, torch.Tensor]]] = {0: [], 1: []}
        if num_classes:
            self._build(num_classes)

    # --- model -------------------------------------------------------------------------------------

    def _build(self, num_classes: int) -> None:
        hp = self.hparams
        self.model = ReIDNet(
            hp.backbone,
            hp.backbone_args,
            num_classes=num_classes,
            use_st2n=hp.use_st2n,
            use_trl=hp.use_trl,
            st2n_transform=hp.st2n_transform,
            st2n_hidden_dim=hp.st2n_hidden_dim,
            st2n_max_scale_change=hp.st2n_max_scale_change,
            st2n_max_shift=hp.st2n_max_shift,
            st2n_backbone_grad=hp.st2n_backbone_grad,
            trl_hidden_dim=hp.trl_hidden_dim,
            trl_generic=hp.trl_generic,
            trl_combine=hp.trl_combine,
            temporal_pool=hp.temporal_pool,
            bn_neck=hp.bn_neck,
        )

    def setup(self, stage: str) -> None:
        if self.model is not None:
            return
        classes = getattr(getattr(self.trainer, "datamodule", None), "classes", None)
        if not classes:
            raise UsageError(
                "TemporalResidualReID needs num_classes (or a datamodule with training identities)"
            )
        self.hparams.num_classes = len(classes)  # saved with checkpoints
        self._build(len(classes))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Tracklet embeddings (B, D) of clips (B, C, T, H, W)."""
        return self.model.forward_head(self.model.forward_features(video), pre_logits=True)

    # --- steps -------------------------------------------------------------------------------------

    def _check_tracklets(self, batch: dict[str, Any], split: str) -> None:
        """A tracklet of one frame: every sampled frame is the same one (the sampler loops short videos)."""
        if self.hparams.single_frame == "repeat" or "frame_indices" not in batch:
            return
        indices = batch["frame_indices"].flatten(1)  # (B, K·T)
        single = (indices == indices[:, :1]).all(dim=1)  # (B,)
        if batch["video"].shape[2] > 1 and not bool(single.any()):
            return
        row = int(single.nonzero()[0, 0]) if bool(single.any()) else 0
        raise TrackletTooShortError(
            f"{self._tracklet_name(split, int(batch['index'][row]))} has a single frame: TRL and ST²N need its "
            "other frames (drop it, or set model single_frame: repeat)"
        )

    def _tracklet_name(self, split: str, index: int) -> str:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        dataset = getattr(datamodule, "datasets", {}).get(split)
        records = getattr(dataset, "records", None)
        if records is not None and 0 <= index < len(records):
            return f"{split} tracklet {records[index].path}"
        return f"{split} tracklet {index}"

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._check_tracklets(batch, "train")
        hp = self.hparams
        embedding = self(batch["video"])  # (B, D)
        logits = self.model.classify(embedding)  # (B, identities)
        id_loss = F.cross_entropy(logits, batch["label"], label_smoothing=hp.label_smoothing)
        triplet = batch_hard_triplet_loss(embedding, batch["identity"], hp.triplet_margin)
        loss = hp.id_loss_weight * id_loss + hp.triplet_loss_weight * triplet
        size = len(embedding)
        accuracy = (logits.argmax(dim=1) == batch["label"]).float().mean()
        for name, value in (
            ("loss", loss),
            ("id_loss", id_loss),
            ("triplet_loss", triplet),
            ("id_top1", accuracy),
        ):
            self.log(
                f"train/{name}", value, prog_bar=name == "loss", on_step=True, on_epoch=True, batch_size=size
            )
        return loss

    def _eval_step(self, batch: dict[str, Any], dataloader_idx: int) -> None:
        self._check_tracklets(batch, "query" if dataloader_idx == 0 else "gallery")
        self._eval_outputs[dataloader_idx].append(
            {
                "features": self(batch["video"]).float(),
                "identity": batch["identity"],
                "camera": batch["camera"],
            }
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch["video"])

    def _gathered(self, dataloader_idx: int) -> dict[str, torch.Tensor]:
        outputs = self._eval_outputs[dataloader_idx]
        self._eval_outputs[dataloader_idx] = []
        local = {
            key: torch.cat([o[key] for o in outputs]).cpu() for key in ("features", "identity", "camera")
        }
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return local
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)  # ranks may hold different numbers of tracklets
        return {key: torch.cat([part[key] for part in parts]) for key in local}

    def _log_reid_metrics(self, split: str) -> None:
        if not self._eval_outputs[0] or not self._eval_outputs[1]:
            self._eval_outputs = {0: [], 1: []}
            return
        query, gallery = self._gathered(0), self._gathered(1)
        metrics = reid_metrics(
            query["features"],
            query["identity"],
            query["camera"],
            gallery["features"],
            gallery["identity"],
            gallery["camera"],
            ranks=RANKS,
            metric=self.hparams.metric,
        )
        for name in [f"rank-{k}" for k in RANKS] + ["mAP"]:
            self.log(
                f"{split}/{name}",
                metrics[name],
                prog_bar=name in ("rank-1", "mAP"),
                add_dataloader_idx=False,  # one figure of query and gallery together
                rank_zero_only=True,
            )

    def on_validation_epoch_end(self) -> None:
        self._log_reid_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_reid_metrics("test")

    # --- optimisation --------------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = param_groups(self.model.named_parameters(), hp.weight_decay)
        optimizer = build_optimizer(hp.optimizer, groups, hp.lr, hp.momentum)
        schedule = per_step_schedule(optimizer, self.trainer, hp.warmup_epochs, hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
