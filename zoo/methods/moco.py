"""MoCo: Momentum Contrast for Unsupervised Visual Representation Learning — the base of BE and DSM.

He, Fan, Wu, Xie, Girshick, CVPR 2020, https://arxiv.org/abs/1911.05722.

Method (§3, Algorithm 1): a query encoder f_q and a key encoder f_k, the latter an exponential
moving average of the former (m = 0.999, eq. 2); each query q = f_q(x^q) is contrasted with the key
k₊ = f_k(x^k) of another augmentation of its sample and with a queue of K past keys, by InfoNCE
(eq. 1) with τ = 0.07; after the step the batch's keys are enqueued (gathered from every rank) and
the oldest dequeued.

As in the video code of Background Erasing and DSM (``FingerRec/BE``, ``src/Contrastive/pt.py``):
f is any registered video backbone followed by a linear head to 128-d and L2-normalisation
(``id_head``); the key is the same temporal segment as the query with independent spatial
augmentation; and ``intra_video_negative: true`` appends one column to the logits, ``q·n`` with n
the online encoder's embedding of a clip of the same video at another time —
``[q·k₊, q·queue, q·n] / τ`` (:func:`zoo.objectives.moco.moco_logits`). The views come from the
data module with ``view_clips: intra_video`` (B, 3, C, T, H, W) = (anchor, key, negative), or any
two views (B, 2, ...) without the extra column. ``objective: triplet`` replaces InfoNCE by the
"(triplet)" variant of BE/DSM (:func:`zoo.objectives.moco.intra_inter_triplet_loss`, every branch
through the online encoder; the momentum encoder and the queue are then unused).

Subclasses disturb the anchor in :meth:`MoCo.disturb_anchor` (BE: add a static frame; DSM: warp).

Choices the sources leave open, zoo's: the momentum is constant (``momentum_tau`` =
``momentum_tau_final`` = 0.999, the code's ``pt_alpha``); no shuffled BN (the BE/DSM code has none);
the queue starts as random unit vectors; the online probe reads the anchor's pooled features.
The BE/DSM baseline "MoCo" appends a clip of *another* video as its extra column; plain MoCo here
has none (``intra_video_negative: false``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.catalog import Paper
from zoo.eval.features import embed
from zoo.methods.base import SSLMethod
from zoo.methods.optim import OptimizerName
from zoo.objectives.moco import intra_inter_triplet_loss, moco_loss

__all__ = ["MoCo"]

Objective = Literal["infonce", "triplet"]


class MoCo(SSLMethod):
    """MoCo over ``batch["video_views"]``: (anchor, key[, intra-video negative]).

    Args:
        encoder: registered backbone name (``i3d`` in BE/DSM, ``r3d_tiny``, ...).
        encoder_kwargs: extra arguments of the backbone factory.
        embedding_dim: output of the linear head (128 in MoCo and the BE/DSM code).
        queue_size: K, keys in the queue (65536 in MoCo; the BE/DSM scripts: 16384 default,
            65536 Kinetics, 3569 UCF101).
        temperature: τ of InfoNCE (0.07).
        intra_video_negative: append ``q·n`` for the third view, a clip of the same video at another time.
        objective: ``infonce`` (queue logits) or ``triplet`` (the "(triplet)" variants of BE/DSM).
        triplet_margin: margin of the triplet objective (0.5 in the BE/DSM code).
        optimizer: the optimiser (SGD in the BE/DSM code).
        lr: learning rate (0.003, the BE/DSM default).
        weight_decay: weight decay (1e-4).
        warmup_epochs: linear warm-up (none in the code).
        momentum_tau: EMA coefficient m of the key encoder (0.999).
        momentum_tau_final: m at the end of training (0.999: constant, as MoCo).
        **kwargs: other optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Momentum Contrast for Unsupervised Visual Representation Learning (CVPR 2020)",
        "https://arxiv.org/abs/1911.05722",
    )

    def __init__(
        self,
        encoder: str = "r3d_tiny",
        encoder_kwargs: dict[str, Any] | None = None,
        embedding_dim: int = 128,
        queue_size: int = 16384,
        temperature: float = 0.07,
        intra_video_negative: bool = False,
        objective: Objective = "infonce",
        triplet_margin: float = 0.5,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.003,
        weight_decay: float = 1e-4,
        warmup_epochs: float = 0.0,
        momentum_tau: float = 0.999,
        momentum_tau_final: float = 0.999,
        **kwargs: Any,
    ):
        super().__init__(
            optimizer=optimizer,
            lr=lr,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            momentum_tau=momentum_tau,
            momentum_tau_final=momentum_tau_final,
            **kwargs,
        )
        if objective not in ("infonce", "triplet"):
            raise ValueError(f"objective must be 'infonce' or 'triplet', got {objective!r}")
        f = self.add_encoder("video", encoder, encoder_kwargs)
        self.head = nn.Linear(f.num_features, embedding_dim)  # id_head: pooled features -> 128, then L2
        if objective == "infonce":
            self.add_momentum_encoder("video", f)  # f_k (eq. 2)
            self.add_momentum_encoder("head", self.head)
            self.add_queue("moco", queue_size, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x): pooled features (B, F) of clips (B, C, T, H, W)."""
        return self.embed("video", x)

    def embedding(self, h: torch.Tensor) -> torch.Tensor:
        """The L2-normalised head output (B, D) of pooled features h (B, F)."""
        return F.normalize(self.head(h), dim=1)

    def disturb_anchor(self, clips: torch.Tensor) -> torch.Tensor:
        """The method's change to the anchor clips (B, C, T, H, W); MoCo keeps them as they are."""
        return clips

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        views = self._views(batch)
        anchor = self.disturb_anchor(views[:, 0])  # (B, C, T, H, W)
        return {**batch, "video_views": torch.cat([anchor[:, None], views[:, 1:]], dim=1)}

    def _views(self, batch: dict[str, Any]) -> torch.Tensor:
        views = self.require(
            batch, "video_views", "give the data module view_clips: intra_video (or num_views: 2)"
        )  # (B, K, C, T, H, W)
        needed = 3 if self.hparams.intra_video_negative or self.hparams.objective == "triplet" else 2
        if views.shape[1] < needed:
            raise ValueError(
                f"{type(self).__name__} needs {needed} views per sample (anchor, key"
                f"{', intra-video negative' if needed == 3 else ''}), got {views.shape[1]}: give the data "
                "module view_clips: intra_video"
            )
        return views

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        views = self._views(batch)
        anchor, positive = views[:, 0], views[:, 1]  # (B, C, T, H, W) each
        h = self(anchor)  # (B, F)
        q = self.embedding(h)
        if hp.objective == "triplet":
            k = self.embedding(self(positive))
            n = self.embedding(self(views[:, 2]))
            loss = intra_inter_triplet_loss(q, k, n, hp.triplet_margin)
            return {"loss": loss, "features": h}
        with torch.no_grad():  # k = f_k(x^k), the momentum encoder and head
            key_encoder, key_head = self.momentum_encoders["video"], self.momentum_encoders["head"]
            k = F.normalize(key_head(embed(key_encoder.target, positive)), dim=1)
        n = self.embedding(self(views[:, 2])) if hp.intra_video_negative else None
        queue = self.queues["moco"]
        loss = moco_loss(q, k, queue.keys, n, hp.temperature)  # eq. 1 (+ the intra-video column)
        queue.stage(k)  # enqueued after the optimiser step, from every rank
        return {"loss": loss, "features": h}
