"""CMD: Self-supervised Video Representation Learning by Context and Motion Decoupling.

Huang, Liu, Wang, Pan, Xu, Jin, CVPR 2021, https://arxiv.org/abs/2104.00862.

Method: the compressed video supervises the RGB clip network with two signals it holds for free —
keyframes (I-frames) for the context, motion vectors for the motion — through two pretext tasks that
share one video backbone (Fig. 2):

* **context matching**: the clip's global feature (the mean of the fused map F through an MLP head)
  must pick out the feature of its own keyframe (a 2D ResNet-10 on an I-frame near the clip, through
  another MLP head) among the keyframes of the batch — InfoNCE, query → keys;
* **motion prediction**: a transformer encoder–decoder reads F and predicts, for every position of the
  near future's motion-vector clip (starting 2 frames after the RGB clip, 8 frames long), the feature
  that a 3D ResNet-10 computes from those motion vectors. Each prediction must pick its own position of
  its own future among every position of every motion clip in the batch — including hard negatives, the
  motion clips of other times of the same video — one direction, cross-entropy over all positions.

The video backbone is R(2+1)D-26 with a modified last stage (:func:`~zoo.models.context_motion.
context_motion_features`: layer3 split into even/odd frames on the channels, layer4 upsampled and
added) so that the predictor sees 2x7x7 positions of 16x112x112 clips. Downstream, the backbone is used
as is (``encoders.video``: layer4, pooled).

Followed the released code (``pretrain.py``, ``cfg/ucf_config.py``; the paper's sections could not be
read): the heads (Linear 2048 → BN → ReLU → Linear 512 → BN, L2-normalised; the released Conv1d's first
bias is folded into BN, exact), the transformer (512 wide, 8 heads, 2 + 4 layers, dropout 0.1), τ 0.1,
``L = L_m + L_i``, 8 future frames (→ 49 queries at 112 px), ``future_interval`` 2, 3 hard negatives,
motion vectors clamped to ±10 px and divided by 10, SGD with Nesterov momentum 0.9, weight decay 1e-3
(the authors' model card says 5e-3 for the paper's runs), lr 5e-4 × global batch (``lr_scaling:
linear``, ``reference_batch_size: 1``), 5 warm-up epochs then cosine, 120 epochs, gradient clipping 15
(the trainer's ``gradient_clip_val``). Keys are gathered from every rank (see
:mod:`zoo.objectives.context_motion` for the gradient scale).

Zoo's choices, forced by the data module: motion vectors come from zoo's H.264 extraction
(:mod:`zoo.data.compressed`, 8 px cells, repeated to the clip's pixels as CoViAR's per-pixel maps are)
instead of CoViAR's MPEG-4 loader; the hard negatives are the ``hard_negatives`` 8-frame windows that
follow the positive one (the data module reads one window of ``future_frames·(1 + hard_negatives)``
frames, ``motion_offset: 2``) where the released code draws their starts anywhere in the video outside
the positive window; the keyframe is a random I-frame within ``keyframe_reach`` frames of the clip
(released: ±5), else the nearest one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.methods.base import LRScaling, SSLMethod
from zoo.methods.optim import OptimizerName
from zoo.models.context_motion import MotionPredictor, context_motion_features
from zoo.models.heads import ProjectionHead
from zoo.objectives.context_motion import keyed_info_nce_loss

__all__ = ["CMD"]


def _head(in_dim: int, hidden_dim: int, out_dim: int) -> ProjectionHead:
    """CMD's heads: Linear → BN → ReLU → Linear → BN, Kaiming-normal (fan out) as released."""
    head = ProjectionHead(in_dim, hidden_dim, out_dim, num_layers=2, last_batch_norm=True)
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
    return head


class CMD(SSLMethod):
    """Context matching (clip ↔ keyframe) + motion prediction (clip → future motion vectors).

    Batches need ``video`` (B, 3, T, H, W), ``keyframe`` (B, 3, H, W) and ``motion_vectors``
    (B, 2, F·(1 + N), H/b, W/b): the data module's ``keyframe: true``, ``motion_vectors: true``,
    ``motion_offset: 2``, ``motion_frames: F·(1 + N)``.

    Args:
        encoder: registered video backbone (a video ResNet; ``r2plus1d_26`` as released).
        encoder_kwargs: extra arguments of the video backbone factory.
        motion_encoder: registered backbone over motion vectors (``r3d_10_mv``: 2 channels, no stem stride).
        motion_encoder_kwargs: extra arguments of the motion encoder factory.
        keyframe_encoder: registered image backbone over keyframes (``resnet10``).
        keyframe_encoder_kwargs: extra arguments of the keyframe encoder factory.
        clip_frames: T of the RGB clips (16): sizes the predictor's memory.
        clip_size: H = W of the clips, the keyframes and the motion vectors' pixels (112).
        future_frames: frames of each motion-vector window (8 → 49 queries at 112 px).
        hard_negatives: motion windows of other times of the same video per sample (3).
        hidden_dim: width of the transformer (512).
        num_heads: attention heads (8).
        encoder_layers: transformer encoder depth (2).
        decoder_layers: transformer decoder depth (4).
        dropout: transformer dropout (0.1).
        head_hidden_dim: hidden width of the four heads (2048).
        embed_dim: output width of the four heads (512).
        temperature: τ of both losses (0.1).
        motion_clamp: motion vectors are clamped to ± this many pixels and divided by it (10).
        motion_weight: weight of L_m (1).
        context_weight: weight of L_i (1).
        nesterov: Nesterov momentum for ``sgd`` / ``lars`` (released: True).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`; the defaults
            here are the released ones (SGD, lr 5e-4 × global batch, wd 1e-3, 5 warm-up epochs).
    """

    paper = Paper(
        "Self-supervised Video Representation Learning by Context and Motion Decoupling (CVPR 2021)",
        "https://arxiv.org/abs/2104.00862",
    )
    checkpoints = "cmd*"  # catalog entries trained with this method

    def __init__(
        self,
        encoder: str = "r2plus1d_26",
        encoder_kwargs: dict[str, Any] | None = None,
        motion_encoder: str = "r3d_10_mv",
        motion_encoder_kwargs: dict[str, Any] | None = None,
        keyframe_encoder: str = "resnet10",
        keyframe_encoder_kwargs: dict[str, Any] | None = None,
        clip_frames: int = 16,
        clip_size: int = 112,
        future_frames: int = 8,
        hard_negatives: int = 3,
        hidden_dim: int = 512,
        num_heads: int = 8,
        encoder_layers: int = 2,
        decoder_layers: int = 4,
        dropout: float = 0.1,
        head_hidden_dim: int = 2048,
        embed_dim: int = 512,
        temperature: float = 0.1,
        motion_clamp: float = 10.0,
        motion_weight: float = 1.0,
        context_weight: float = 1.0,
        nesterov: bool = True,
        optimizer: OptimizerName = "sgd",
        lr: float = 5e-4,
        lr_scaling: LRScaling = "linear",
        reference_batch_size: int = 1,
        weight_decay: float = 1e-3,
        warmup_epochs: float = 5.0,
        **kwargs: Any,
    ):
        super().__init__(
            optimizer=optimizer,
            lr=lr,
            lr_scaling=lr_scaling,
            reference_batch_size=reference_batch_size,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            **kwargs,
        )
        if hard_negatives < 0 or future_frames < 1 or motion_clamp <= 0:
            raise UsageError(
                "CMD: hard_negatives must be >= 0, future_frames >= 1 and motion_clamp > 0; got "
                f"{hard_negatives}, {future_frames}, {motion_clamp}"
            )
        video = self.add_encoder("video", encoder, encoder_kwargs)
        motion = self.add_encoder("motion_vectors", motion_encoder, motion_encoder_kwargs)
        keyframe = self.add_encoder("keyframe", keyframe_encoder, keyframe_encoder_kwargs)
        memory_shape, query_shape = self._position_grids(video, motion)
        self.motion_predictor = MotionPredictor(
            memory_shape[0],
            memory_shape[1:].numel(),
            query_shape[1:].numel(),
            hidden_dim,
            num_heads,
            encoder_layers,
            decoder_layers,
            dropout,
        )
        self.motion_query_head = _head(hidden_dim, head_hidden_dim, embed_dim)
        self.motion_key_head = _head(motion.num_features, head_hidden_dim, embed_dim)
        self.context_query_head = _head(memory_shape[0], head_hidden_dim, embed_dim)
        self.context_key_head = _head(keyframe.num_features, head_hidden_dim, embed_dim)

    @torch.no_grad()
    def _position_grids(self, video: nn.Module, motion: nn.Module) -> tuple[torch.Size, torch.Size]:
        """(C, T, H, W) of the fused clip map and of the motion encoder's output, from one tiny dry run."""
        hp = self.hparams
        modes = video.training, motion.training
        video.eval(), motion.eval()  # no running statistics from the dry run
        try:
            fused, _ = context_motion_features(
                video, torch.zeros(1, 3, hp.clip_frames, hp.clip_size, hp.clip_size)
            )
            target = motion.forward_features(torch.zeros(1, 2, hp.future_frames, hp.clip_size, hp.clip_size))
        finally:
            video.train(modes[0]), motion.train(modes[1])
        return fused.shape[1:], target.shape[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The representation used downstream: the video backbone's pooled features (B, F)."""
        return self.embed("video", x)

    def motion_targets(self, motion_vectors: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Motion-vector cells (B, 2, F·(1+N), h, w) → encoder inputs ((1+N)·B, 2, F, H, W), positives first.

        Cells are repeated onto the clip's pixels (CoViAR's per-pixel maps), clamped to ±``motion_clamp``
        pixels and divided by it, and split into the positive window and the N later ones.
        """
        hp = self.hparams
        windows = 1 + hp.hard_negatives
        if motion_vectors.shape[2] != hp.future_frames * windows:
            raise UsageError(
                f"CMD: motion_vectors hold {motion_vectors.shape[2]} frames, expected future_frames × (1 + "
                f"hard_negatives) = {hp.future_frames * windows}: set the data module's motion_frames to it "
                "(and motion_offset: 2)"
            )
        pixels = F.interpolate(motion_vectors, size=(motion_vectors.shape[2], *size), mode="nearest")
        pixels = pixels.clamp(-hp.motion_clamp, hp.motion_clamp) / hp.motion_clamp
        # (1 + N, B) flattened: the B positive windows first, in batch order (the loss's labels)
        return rearrange(pixels, "b m (n t) h w -> (n b) m t h w", n=windows)

    def embeddings(
        self, video: torch.Tensor, keyframe: torch.Tensor, motion: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The four L2-normalised embeddings of CMD's losses, and layer4's map for the probe.

        Args:
            video: clips (B, 3, T, H, W).
            keyframe: their keyframes (B, 3, H, W).
            motion: motion-vector windows ((1+N)·B, 2, F, H, W), the B positive ones first
                (:meth:`motion_targets`).

        Returns:
            ``(motion_query (B·Q, E), motion_keys ((1+N)·B·Q, E), context_query (B, E),
            context_key (B, E), last (B, C4, t, h, w))``; query row ``b·Q + q`` is position ``q``
            (t, h, w order) of sample b's future, the positive of key row ``b·Q + q``.
        """
        fused, last = context_motion_features(self.encoders["video"], video)  # (B, C, T', H', W')
        # motion prediction: every future position predicted from the clip map
        predicted = self.motion_predictor(fused)  # (B, Q, D)
        query = F.normalize(self.motion_query_head(predicted.flatten(0, 1)), dim=1)  # (B·Q, E)
        target = self.encoders["motion_vectors"].forward_features(motion)  # ((1+N)·B, C_m, t, h, w)
        if target[0, 0].numel() != predicted.shape[1]:
            raise UsageError(
                f"CMD: the motion encoder gives {tuple(target.shape[2:])} positions, the predictor was built "
                f"for {predicted.shape[1]}: clip_size ({self.hparams.clip_size}) and future_frames must match "
                "the data"
            )
        keys = rearrange(target, "n c t h w -> (n t h w) c")
        keys = F.normalize(self.motion_key_head(keys), dim=1)  # ((1+N)·B·Q, E), positives first
        # context matching: the clip's global feature against the keyframes
        context_query = F.normalize(self.context_query_head(fused.mean(dim=(2, 3, 4))), dim=1)  # (B, E)
        context_key = F.normalize(self.context_key_head(self.embed("keyframe", keyframe)), dim=1)  # (B, E)
        return query, keys, context_query, context_key, last

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        video = self.require(batch, "video", "one clip per sample")  # (B, 3, T, H, W)
        keyframe = self.require(batch, "keyframe", "give the data module keyframe: true")  # (B, 3, H, W)
        motion_vectors = self.require(
            batch, "motion_vectors", "give the data module motion_vectors: true, motion_offset: 2"
        )  # (B, 2, F·(1+N), h, w)
        targets = self.motion_targets(motion_vectors, video.shape[-2:])  # ((1+N)·B, 2, F, H, W)
        query, keys, context_query, context_key, last = self.embeddings(video, keyframe, targets)
        gather = hp.gather_distributed
        # L_m: each predicted position against every motion position of the (gathered) batch
        loss_motion, top1_motion = keyed_info_nce_loss(
            query, keys, hp.temperature, gather=gather, return_accuracy=True
        )
        # L_i: each clip against the keyframes of the (gathered) batch
        loss_context, top1_context = keyed_info_nce_loss(
            context_query, context_key, hp.temperature, gather=gather, return_accuracy=True
        )

        loss = hp.motion_weight * loss_motion + hp.context_weight * loss_context  # L = L_m + L_i
        features = self.encoders["video"].forward_head(last, pre_logits=True)  # (B, F) downstream features
        return {
            "loss": loss,
            "features": features,
            "loss_motion": loss_motion.detach(),
            "loss_context": loss_context.detach(),
            "motion_top1": top1_motion,
            "context_top1": top1_context,
        }

    def configure_optimizers(self) -> dict[str, Any]:
        config = super().configure_optimizers()
        if self.hparams.nesterov:
            if self.hparams.optimizer not in ("sgd", "lars"):
                raise UsageError(f"CMD: nesterov needs optimizer sgd or lars, not {self.hparams.optimizer!r}")
            for group in config["optimizer"].param_groups:
                group["nesterov"] = True
        return config
