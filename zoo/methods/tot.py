"""TOT: Unsupervised Action Segmentation by Joint Representation Learning and Online Clustering.

Kumar, Haresh, Ahmed, Konin, Zia, Tran, CVPR 2022, https://arxiv.org/abs/2105.13353.

Method (§3): pre-extracted frame features of the videos of one activity are embedded by a small MLP
(:class:`~zoo.models.tot.TOTNetwork`, D → 2E → E with sigmoids) and scored against K prototypes,
``s = z Cᵀ``. Each batch holds a few videos with frames sorted in time (the data module's ``mode:
sorted``). Pseudo-labels come from temporal optimal transport (eq. 4–6): Sinkhorn (3 rounds) on
``exp(s / ε) ⊙ T`` with TOT's Gaussian order prior T (ε 0.08, σ 1.5,
:func:`~zoo.objectives.optimal_transport.temporal_ot_assignment`), and the model learns to predict them:
``L_OT = −Σ Q log softmax(s / τ)`` with τ 0.1 (eq. 7). The temporal coherence loss (TCL,
:func:`~zoo.objectives.temporal_coherence.temporal_coherence_loss`) pulls neighbouring frames together.
As SwAV, the prototypes stay fixed for the first ``freeze_prototypes_steps`` optimiser steps.

Inference (§3.4): every frame's log-likelihoods ``log softmax(s / τ)``; the clusters of an activity are
ordered by the mean relative time of their frames, and each video is decoded with fixed-order Viterbi
(:func:`~zoo.eval.temporal_decoding.decode_segments`). Validation and test report MoF (Hungarian matching
over all videos of an activity), F1@{10,25,50} and edit score, globally and per activity.

The released code (``trquhuytin/TOT-CVPR22``) applies the temporal prior and the TCL only under the
flags ``--apply_temporal_ot`` and ``--tcn_loss``, which default to False and which none of its training
scripts sets (its issue #2: collapsed clusters). Here both are on, as in the paper;
``temporal_ot: false, coherence_loss: false, decode_order: index`` reproduces what the released scripts
run. Differences from the released code, by design: the TCL pairs are neighbours in the ``sorted``
sample (the released loader draws half the frames as anchors and half within ±30 frames of them); the
Sinkhorn kernel is shifted by its maximum (no overflow to NaN) and the prior enters as a log.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.segmentation import segmentation_metrics
from zoo.eval.temporal_decoding import decode_segments
from zoo.methods.base import SSLMethod
from zoo.methods.optim import OptimizerName
from zoo.models.tot import TOTNetwork
from zoo.objectives.infonce import at_least_float32
from zoo.objectives.optimal_transport import temporal_ot_assignment
from zoo.objectives.temporal_coherence import temporal_coherence_loss

__all__ = ["TOT"]

LOG_PROB_FLOOR = math.log(1e-30)  # the original clamps the probabilities at 1e-30


class TOT(SSLMethod):
    """TOT over batches of per-frame features ``features`` (B, T, D) with ``mask`` (B, T).

    Args:
        feature_dim: D, the dimension of the frame features.
        num_clusters: K, the sub-actions of the activity (prototypes).
        embed_dim: E, the embedding dimension (Breakfast 30, YouTube Instructions 200).
        epsilon: ε of the optimal transport (TOT: 0.08).
        sigma: σ of the temporal prior (TOT: 1.5).
        sinkhorn_iters: Sinkhorn rounds (TOT: 3).
        temperature: τ of ``softmax(s / τ)`` in the clustering loss and the likelihoods (TOT: 0.1).
        temporal_ot: multiply the kernel by the temporal prior (paper: on; released scripts: off).
        coherence_loss: add the temporal coherence loss (paper: on; released scripts: off).
        coherence_weight: weight of the temporal coherence loss.
        coherence_group_size: frames per group of the TCL (TOT: frames per video / temporal parts).
        coherence_temperature: τ of the TCL logits (TOT's code: 0.01, see
            :mod:`zoo.objectives.temporal_coherence`).
        freeze_prototypes_steps: optimiser steps during which the prototypes get no update (TOT: 4000).
        cluster_loss_from_step: the clustering loss counts from this optimiser step on (TOT: 0).
        decode_order: ``"time"`` (clusters ordered by mean relative time, the paper) or ``"index"``
            (prototype order, the released inference).
        background_percentile: label background the frames below every cluster's percentile (YouTube
            Instructions: 45); None for datasets without background.
        background_label: the ground-truth label of background frames (with ``background_percentile``).
        optimizer: the optimiser (TOT: Adam).
        lr: its learning rate (TOT: 1e-3; Desktop Assembly 1e-2).
        weight_decay: L2 coefficient (TOT: 1e-4).
        exclude_bias_and_norm: keep biases out of weight decay (TOT: no, every parameter decays).
        warmup_epochs: linear warm-up length (TOT: none).
        min_lr_ratio: final learning rate as a fraction of the peak (TOT: 1, a constant rate).
        online_probe: train a linear probe on the activity labels (off: TOT has none).
        **kwargs: other settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Unsupervised Action Segmentation by Joint Representation Learning and Online Clustering (CVPR 2022)",
        "https://arxiv.org/abs/2105.13353",
    )
    checkpoints = "tot*"

    def __init__(
        self,
        feature_dim: int,
        num_clusters: int,
        embed_dim: int = 30,
        epsilon: float = 0.08,
        sigma: float = 1.5,
        sinkhorn_iters: int = 3,
        temperature: float = 0.1,
        temporal_ot: bool = True,
        coherence_loss: bool = True,
        coherence_weight: float = 1.0,
        coherence_group_size: int = 4,
        coherence_temperature: float = 0.01,
        freeze_prototypes_steps: int = 4000,
        cluster_loss_from_step: int = 0,
        decode_order: Literal["time", "index"] = "time",
        background_percentile: float | None = None,
        background_label: int | None = None,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        exclude_bias_and_norm: bool = False,
        warmup_epochs: float = 0.0,
        min_lr_ratio: float = 1.0,
        online_probe: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            exclude_bias_and_norm=exclude_bias_and_norm,
            warmup_epochs=warmup_epochs,
            min_lr_ratio=min_lr_ratio,
            online_probe=online_probe,
            **kwargs,
        )
        if decode_order not in ("time", "index"):
            raise UsageError(f"decode_order must be 'time' or 'index', not {decode_order!r}")
        if (background_percentile is None) != (background_label is None):
            raise UsageError("background_percentile and background_label go together")
        self.network = TOTNetwork(feature_dim, embed_dim, num_clusters)
        self._segmentation: dict[str, list[tuple[np.ndarray, np.ndarray, int]]] = defaultdict(list)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings z (..., E) and prototype scores s (..., K) of frame features (..., D)."""
        if features.shape[-1] != self.hparams.feature_dim:
            raise UsageError(
                f"TOT was built for feature_dim={self.hparams.feature_dim}, the batch's features are "
                f"{tuple(features.shape)}; set model feature_dim to {features.shape[-1]}"
            )
        return self.network(features)

    def log_likelihood(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame cluster log-likelihoods ``log softmax(s / τ)`` (..., K) of features (..., D)."""
        _, scores = self(features)
        return self.log_probabilities(scores)

    def log_probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """``log softmax(s / τ)`` (..., K) of prototype scores (..., K), in float32 under autocast."""
        scores = at_least_float32(scores)
        return F.log_softmax(scores / self.hparams.temperature, dim=-1).clamp(min=LOG_PROB_FLOOR)

    @torch.no_grad()
    def segment(self, videos: list[torch.Tensor]) -> list[np.ndarray]:
        """Cluster ids (``-1``: background) of every frame of the videos of one activity.

        Args:
            videos: per video, its frame features (T_i, D) in time order.
        """
        hp = self.hparams
        grids = [self.log_likelihood(video.to(self.device)).cpu() for video in videos]
        return decode_segments(grids, hp.decode_order, hp.background_percentile)

    # --- training --------------------------------------------------------------------------------

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        features = self.require(batch, "features", "TOT reads per-frame feature sequences")  # (B, T, D)
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)  # (B, T)
        z, scores = self(features)  # (B, T, E), (B, T, K)
        lengths = mask.sum(dim=1).tolist()  # frames of each video
        frame_scores = scores[mask]  # (N, K) video after video, frames in order
        codes = temporal_ot_assignment(  # eq. 4-6, no gradient
            frame_scores,
            hp.epsilon,
            hp.sigma,
            video_lengths=lengths,
            num_iters=hp.sinkhorn_iters,
            temporal=hp.temporal_ot,
            distributed=False,
        )
        log_probs = self.log_probabilities(frame_scores)
        cluster_loss = -(codes * log_probs).sum(dim=1).mean()  # eq. 7
        loss = scores.sum() * 0.0  # keeps the graph when no term counts yet
        if self.global_step >= hp.cluster_loss_from_step:
            loss = loss + cluster_loss
        out = {"cluster_loss": cluster_loss.detach()}
        if hp.coherence_loss:
            if not bool(mask.all()):
                raise UsageError(
                    "TOT's coherence loss needs videos of equal length in a batch: train with data mode: "
                    "sorted (or batch_size: 1)"
                )
            coherence = temporal_coherence_loss(z, hp.coherence_group_size, hp.coherence_temperature)
            loss = loss + hp.coherence_weight * coherence
            out["coherence_loss"] = coherence.detach()
        return {"loss": loss, **out}

    def on_after_backward(self) -> None:
        if self.global_step < self.hparams.freeze_prototypes_steps:  # SwAV's trick, as TOT
            self.network.prototype_layer.weight.grad = None

    # --- segmentation metrics on the validation and test videos -----------------------------------------

    def _collect(self, split: str, batch: dict[str, Any]) -> None:
        features = self.require(batch, "features")  # (B, T, D)
        segments = self.require(batch, "segments", "segmentation metrics need frame labels")  # (B, T)
        mask = batch.get("mask", segments >= 0)
        activities = batch.get("label", torch.full((len(features),), -1))
        with torch.no_grad():
            grids = self.log_likelihood(features).cpu()  # (B, T, K)
        for grid, target, valid, activity in zip(grids, segments.cpu(), mask.cpu(), activities.tolist()):
            self._segmentation[split].append((grid[valid].numpy(), target[valid].numpy(), int(activity)))

    def _log_segmentation(self, split: str) -> None:
        videos = self._segmentation.pop(split, [])
        if not videos:
            return
        hp = self.hparams
        by_activity: dict[int, list[int]] = defaultdict(list)
        for i, (_, _, activity) in enumerate(videos):
            by_activity[activity].append(i)
        predictions: list[np.ndarray] = [np.zeros(0)] * len(videos)
        for members in by_activity.values():  # clusters are ordered within each activity
            decoded = decode_segments(
                [videos[i][0] for i in members], hp.decode_order, hp.background_percentile
            )
            for i, labels in zip(members, decoded):
                if hp.background_label is not None:
                    labels = np.where(labels < 0, hp.background_label, labels)
                predictions[i] = labels
        targets = [target for _, target, _ in videos]
        groups = [activity for _, _, activity in videos]
        background = [] if hp.background_label is None else [hp.background_label]
        metrics = {"": segmentation_metrics(predictions, targets, "dataset", groups, background)}
        if len(by_activity) > 1:
            for activity, members in sorted(by_activity.items()):
                metrics[f"activity{activity}_"] = segmentation_metrics(
                    [predictions[i] for i in members],
                    [targets[i] for i in members],
                    "dataset",
                    None,
                    background,
                )
        for prefix, values in metrics.items():
            for name, value in values.items():
                self.log(f"{split}/{prefix}{name}", value, batch_size=len(videos), rank_zero_only=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_segmentation("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_segmentation("test")
