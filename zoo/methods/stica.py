"""STiCA: Space-Time Crop & Attend — feature crops and transformer pooling on GDT's audio-visual model.

Patrick, Huang, Misra, Metze, Vedaldi, Asano, Henriques, ICCV 2021, https://arxiv.org/abs/2103.10211.

Method (§3): two augmented views of a clip go once each through the video backbone (R(2+1)D-18 without
its pooling); their feature maps (B, 512, T, 7, 7) are pooled by a small transformer over time tokens
(:class:`~zoo.models.transformer_pooling.TransformerPooling`: q/k-only attention, post-norm, output =
token 0) and projected by GDT's MLP head. *Feature crops* (:mod:`zoo.models.feature_crops`) — large
and small windows of the map in space and in time — go through the same pooling and head, standing in
for many pixel crops at the cost of one backbone pass per view. The loss is
``(1 − α) · L_crops + α · L_av`` (α = 0.5): ``L_av`` the cross-modal term of each view with its audio
(t 0.1, keys detached, negatives from every rank), ``L_crops`` the large–large and small→large crop
terms (t 0.5; :func:`zoo.objectives.gdt.stica_crop_loss`).

The pooling takes the number of time tokens from the full feature map it crops from, so there is no
``transformer_time_dim`` to keep equal to the map's temporal size by hand (the original's silent trap:
a mismatch made its ``view`` mix samples). Data: ``num_views: 2, view_clips: same`` (two augmentations
of one clip) with ``audio: true``; samples without audio are dropped and counted as in GDT.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from zoo.catalog import Paper
from zoo.methods.gdt import GDT
from zoo.models.feature_crops import FeatureCropSampler, crop_feature_map
from zoo.models.transformer_pooling import TransformerPooling
from zoo.objectives.gdt import cross_view_nce_loss, stica_crop_loss

__all__ = ["STiCA"]


class STiCA(GDT):
    """STiCA over ``video_views`` (2 augmentations of a clip) and their ``audio_views``.

    Args:
        video_encoder: registered video backbone (``r2plus1d_18``); its feature map is cropped.
        video_encoder_kwargs: extra arguments of the video backbone.
        audio_encoder: registered audio backbone (``resnet9_audio``).
        audio_encoder_kwargs: extra arguments of the audio backbone.
        num_layers: transformer pooling layers (0: global average pooling, the README's example).
        num_heads: attention heads of the pooling.
        pooling_dropout: dropout of the pooling transformer.
        qkv: value and output projections in the pooling's attention (the original's ``--qkv_mha``).
        spatial_large: large spatial crops per view (at most 2).
        spatial_small: small spatial crops per view.
        temporal_large: large temporal crops per view (at most 2).
        temporal_small: small temporal crops per view.
        spatial_sizes: (large, small) spatial windows in feature cells (default from the map: 6, 4 on 7 × 7).
        temporal_sizes: (large, small) temporal windows in time steps (default ¾ T, ½ T).
        original_offsets: draw crop offsets as the original (never the last position).
        temperature: t of the crop terms (``--temp``, 0.5).
        cross_modal_temperature: t of the audio-visual term (0.1).
        cross_modal_alpha: α, the weight of the audio-visual term.
        proj_hidden_dim: hidden width of the MLP heads.
        proj_output_dim: dimension of the embeddings compared by the loss.
        proj_dropout: dropout before each linear layer of the heads.
        missing_audio: ``skip`` samples without audio (counted) or raise an ``error``.
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Space-Time Crop & Attend: Improving Cross-modal Video Representation Learning (ICCV 2021)",
        "https://arxiv.org/abs/2103.10211",
    )
    checkpoints = "stica-*"  # none is published

    def __init__(
        self,
        video_encoder: str = "r2plus1d_18",
        video_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder: str = "resnet9_audio",
        audio_encoder_kwargs: dict[str, Any] | None = None,
        num_layers: int = 2,
        num_heads: int = 4,
        pooling_dropout: float = 0.0,
        qkv: bool = False,
        spatial_large: int = 2,
        spatial_small: int = 4,
        temporal_large: int = 2,
        temporal_small: int = 1,
        spatial_sizes: tuple[int, int] | None = None,
        temporal_sizes: tuple[int, int] | None = None,
        original_offsets: bool = False,
        temperature: float = 0.5,
        cross_modal_temperature: float = 0.1,
        cross_modal_alpha: float = 0.5,
        proj_hidden_dim: int = 512,
        proj_output_dim: int = 256,
        proj_dropout: float = 0.3,
        missing_audio: Literal["skip", "error"] = "skip",
        **kwargs: Any,
    ):
        super().__init__(
            video_encoder=video_encoder,
            video_encoder_kwargs=video_encoder_kwargs,
            audio_encoder=audio_encoder,
            audio_encoder_kwargs=audio_encoder_kwargs,
            temperature=temperature,
            proj_hidden_dim=proj_hidden_dim,
            proj_output_dim=proj_output_dim,
            proj_dropout=proj_dropout,
            missing_audio=missing_audio,
            **kwargs,
        )
        width = self.encoders["video"].num_features
        self.pooling = TransformerPooling(width, num_layers, num_heads, dropout=pooling_dropout, qkv=qkv)
        self.crops = FeatureCropSampler(
            spatial_large,
            spatial_small,
            temporal_large,
            temporal_small,
            None if spatial_sizes is None else tuple(spatial_sizes),
            None if temporal_sizes is None else tuple(temporal_sizes),
            original_offsets,
        )

    @property
    def views_needed(self) -> int:
        return 2  # two augmentations of the clip

    def embed_feature_map(self, feature_map: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """``feat2nce``: pooling → MLP head → L2 normalisation, (B, C, T', H', W') -> (B, D)."""
        return F.normalize(self.heads["video"](self.pooling(feature_map, num_tokens)), dim=1)

    def view_embeddings(
        self, video: torch.Tensor, crops: dict[str, list] | None = None
    ) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]], torch.Tensor]:
        """One view (B, C, T, H, W): (pooled features (B, F), crop embeddings by kind, clip embedding (B, D)).

        Args:
            video: the view's clips.
            crops: :class:`~zoo.models.feature_crops.FeatureCrop` lists by kind (drawn when ``None``).
        """
        feature_map = self.encoders["video"].forward_features(video)  # (B, C, T', H', W')
        num_tokens = feature_map.shape[2]
        if crops is None:
            crops = self.crops.sample(tuple(feature_map.shape[2:]))
        crop_embeddings = {
            kind: [self.embed_feature_map(crop_feature_map(feature_map, c), num_tokens) for c in kind_crops]
            for kind, kind_crops in crops.items()
        }
        features = self.encoders["video"].forward_head(feature_map, pre_logits=True)
        return features, crop_embeddings, self.embed_feature_map(feature_map, num_tokens)

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        clips, spectrograms, _ = self._clips(batch)  # (B, 2, C, T, H, W), (B, 2, 1, F, S)
        gather = hp.gather_distributed
        crop_embeddings, av_terms = [], []
        for view in range(2):
            features, crops, video = self.view_embeddings(clips[:, view])
            _, audio = self.project("audio", spectrograms[:, 0])  # the clip's sound, one pass per view
            crop_embeddings.append(crops)
            av_terms.append(cross_view_nce_loss(video, audio, hp.cross_modal_temperature, gather=gather))
            if view == 0:
                probe_features = features
        loss_av = torch.stack(av_terms).mean()
        alpha = hp.cross_modal_alpha
        loss_crops = stica_crop_loss(*crop_embeddings, hp.temperature, gather) if alpha < 1 else loss_av * 0
        loss = (1 - alpha) * loss_crops + alpha * loss_av
        return {"loss": loss, "loss_av": loss_av, "loss_crops": loss_crops, "features": probe_features}
