"""SimCLR: A Simple Framework for Contrastive Learning of Visual Representations.

Chen, Kornblith, Norouzi, Hinton, ICML 2020, https://arxiv.org/abs/2002.05709.

Method (§2.1): two views of each sample are drawn by the same family of augmentations t ~ T —
random resized crop (+ flip), colour distortion of strength s and Gaussian blur (App. A; the
``"simclr"`` preset of :func:`zoo.data.transforms.build_transform`). A base encoder f(·) maps each
view to h = f(x̃) (the representation used downstream), a small MLP g(·) projects it to
z = g(h), and the NT-Xent loss (eq. 1) makes the two views of a sample pick each other out of the
2N − 1 other views of the batch. Training uses large batches with LARS, lr 0.3·B/256, weight decay
1e-6, 10 warm-up epochs then cosine decay (§B.1).

Video variant: the views are clips (B, K, C, T, H, W) — e.g. two clips of one video at different
times with independent spatial augmentation (ρSimCLR, Feichtenhofer et al. 2021) — and f(·) is any
registered video backbone (``r3d_tiny``, ``r2plus1d_18``, ...). Images: views (B, K, C, H, W).
The views come from the data module (``num_views: 2``, ``train_transform: simclr``; with
``device_transforms: true`` the augmentation runs on the GPU, batched).
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange

from zoo.catalog import Paper
from zoo.methods.base import SSLMethod
from zoo.models.heads import ProjectionHead
from zoo.objectives.infonce import PairReduction, nt_xent_loss

__all__ = ["SimCLR"]


class SimCLR(SSLMethod):
    """SimCLR over ``batch[f"{modality}_views"]``; any backbone of the registry as f(·).

    Args:
        encoder: registered backbone name (``r3d_tiny``, ``resnet50``, ...).
        encoder_kwargs: extra arguments of the backbone factory.
        modality: ``video`` (views (B, K, C, T, H, W)) or ``image`` (views (B, K, C, H, W)).
        proj_hidden_dim: hidden width of g(·).
        proj_output_dim: dimension of z.
        proj_layers: linear layers of g(·) (2 in SimCLR v1, 3 in v2).
        proj_last_batch_norm: BN after g's last layer (as in the TF code).
        temperature: τ of NT-Xent (0.1 at large batch, 0.5 on CIFAR in the paper).
        view_reduction: ``mean`` over the 2N anchors (PyTorch ports) or ``sum`` over the two views
            (the TF original's value, twice as large; see :mod:`zoo.objectives.infonce`).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "A Simple Framework for Contrastive Learning of Visual Representations (ICML 2020)",
        "https://arxiv.org/abs/2002.05709",
    )
    checkpoints = "simclr*"  # catalog entries trained with this method

    def __init__(
        self,
        encoder: str = "r3d_tiny",
        encoder_kwargs: dict[str, Any] | None = None,
        modality: str = "video",
        proj_hidden_dim: int = 2048,
        proj_output_dim: int = 128,
        proj_layers: int = 2,
        proj_last_batch_norm: bool = True,
        temperature: float = 0.1,
        view_reduction: PairReduction = "mean",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        f = self.add_encoder(modality, encoder, encoder_kwargs)
        self.projector = ProjectionHead(
            f.num_features,
            proj_hidden_dim,
            proj_output_dim,
            proj_layers,
            last_batch_norm=proj_last_batch_norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x): the representation of clips (B, C, T, H, W) or images (B, C, H, W)."""
        return self.embed(self.hparams.modality, x)

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        views = self.require(batch, f"{self.hparams.modality}_views", "give the data module num_views: 2")
        # (B, K, C, [T,] H, W)
        k = views.shape[1]
        h = self(views.flatten(0, 1))  # f(·) on all B·K views in one batch (shared BN statistics)
        z = rearrange(self.projector(h), "(b k) d -> b k d", k=k)  # z = g(h)
        loss = nt_xent_loss(  # eq. 1, every view an anchor
            z,
            self.hparams.temperature,
            view_reduction=self.hparams.view_reduction,
            gather=self.hparams.gather_distributed,
        )
        return {"loss": loss, "features": rearrange(h, "(b k) f -> b k f", k=k)[:, 0]}
