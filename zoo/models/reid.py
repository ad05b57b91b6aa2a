"""Video person re-identification network: per-frame CNN, ST²N alignment, temporal residual learning.

Dai, Zhang, Wang, Lu, Wang, "Video Person Re-Identification by Temporal Residual Learning",
IEEE TIP 28(3) 2019, https://arxiv.org/abs/1802.07918. Only the abstract could be read; what it fixes:

- TRL: two bidirectional LSTMs extract the *generic* and the *specific* features of consecutive frames,
  which describe the person in complementary ways;
- ST²N: a spatial transformer whose parameters come from the high-level semantics of the current frame
  and the temporal context of the other frames, with fewer learnable parameters than a standard STN.

Everything else here is zoo's formulation (see :class:`ReIDNet`): ST²N warps each input frame by a
restricted transform (scale + translation by default) predicted from the frame's backbone feature and
the mean feature of the other frames; TRL adds the time-averaged output of the generic BiLSTM to every
frame's output of the specific BiLSTM (the frame-specific residual) and averages the frames.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from zoo.errors import UsageError
from zoo.models.base import Backbone
from zoo.models.frame_features import per_frame_features
from zoo.registry import build

__all__ = [
    "ReIDNet",
    "SpatialTemporalTransformer",
    "TemporalResidualLearning",
    "TrackletTooShortError",
    "restricted_affine",
]

TransformFamily = Literal["translation", "scale_translation", "affine"]
PARAMETERS_OF = {"translation": 2, "scale_translation": 3, "affine": 6}


class TrackletTooShortError(UsageError):
    """A tracklet has fewer frames than temporal context needs (one frame has no other frames)."""


def restricted_affine(
    params: torch.Tensor, family: TransformFamily, max_scale_change: float = 0.5, max_shift: float = 0.5
) -> torch.Tensor:
    """Affine matrices (N, 2, 3) for ``F.affine_grid`` from raw parameters (N, P); zeros give the identity.

    ``translation``: (tx, ty); ``scale_translation``: (s, tx, ty), one isotropic scale; ``affine``: the six
    entries of a standard STN as offsets from the identity. Scale 1 + c·tanh(s) and shift m·tanh(t) keep the
    crop inside a bounded range (c = ``max_scale_change``, m = ``max_shift``, in normalised coordinates).

    Args:
        params: (N, P) parameters, P = 2, 3 or 6 by ``family``.
        family: ``translation``, ``scale_translation`` or ``affine``.
        max_scale_change: largest relative change of scale.
        max_shift: largest shift, as a fraction of the half-side of the frame.
    """
    if params.shape[-1] != PARAMETERS_OF[family]:
        raise ValueError(f"{family} takes {PARAMETERS_OF[family]} parameters, got {params.shape[-1]}")
    identity = torch.eye(2, 3, dtype=params.dtype, device=params.device).expand(len(params), 2, 3)
    if family == "affine":
        return identity + rearrange(params, "n (r c) -> n r c", r=2)
    shift = max_shift * torch.tanh(params[:, -2:])  # (N, 2)
    scale = torch.ones_like(params[:, 0])
    if family == "scale_translation":
        scale = 1 + max_scale_change * torch.tanh(params[:, 0])  # (N,)
    linear = scale[:, None, None] * torch.eye(2, dtype=params.dtype, device=params.device)  # (N, 2, 2)
    return torch.cat([linear, shift[:, :, None]], dim=2)


def context_of_others(x: torch.Tensor) -> torch.Tensor:
    """Mean over the other frames, c_t = mean_{t' != t} x_t': (B, T, D) -> (B, T, D); needs T >= 2."""
    frames = x.shape[1]
    if frames < 2:
        raise TrackletTooShortError("temporal context needs a tracklet of at least 2 frames, got 1")
    return (x.sum(dim=1, keepdim=True) - x) / (frames - 1)


class SpatialTemporalTransformer(nn.Module):
    """ST²N: warp each frame by a restricted transform θ_t = MLP([d_t; mean_{t'≠t} d_t']).

    The last layer starts at zero, so an untrained ST²N is the identity warp.

    Args:
        feature_dim: D of the frame descriptors d_t (the backbone's pooled features).
        hidden_dim: width of the MLP.
        family: the transform family (:func:`restricted_affine`).
        max_scale_change: largest relative change of scale.
        max_shift: largest shift in normalised coordinates.
    """

    def __init__(
        self,
        feature_dim: int,
        hidden_dim: int = 128,
        family: TransformFamily = "scale_translation",
        max_scale_change: float = 0.5,
        max_shift: float = 0.5,
    ):
        super().__init__()
        if family not in PARAMETERS_OF:
            raise UsageError(f"st2n transform must be one of {sorted(PARAMETERS_OF)}, got {family!r}")
        self.family, self.max_scale_change, self.max_shift = family, max_scale_change, max_shift
        self.localisation = nn.Sequential(
            nn.Linear(2 * feature_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, PARAMETERS_OF[family]),
        )
        nn.init.zeros_(self.localisation[-1].weight)
        nn.init.zeros_(self.localisation[-1].bias)

    def transforms(self, descriptors: torch.Tensor) -> torch.Tensor:
        """θ (B, T, 2, 3) of frame descriptors (B, T, D): from the frame and its temporal context."""
        frames = descriptors.shape[1]
        inputs = torch.cat([descriptors, context_of_others(descriptors)], dim=-1)  # (B, T, 2D)
        params = self.localisation(rearrange(inputs, "b t d -> (b t) d"))  # (B·T, P)
        theta = restricted_affine(params, self.family, self.max_scale_change, self.max_shift)
        return rearrange(theta, "(b t) r c -> b t r c", t=frames)

    def forward(self, video: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
        """Warped clips (B, C, T, H, W) of clips (B, C, T, H, W) and their frame descriptors (B, T, D)."""
        batch = video.shape[0]
        theta = rearrange(self.transforms(descriptors), "b t r c -> (b t) r c")
        images = rearrange(video, "b c t h w -> (b t) c h w")
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        warped = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
        return rearrange(warped, "(b t) c h w -> b c t h w", b=batch)


class TemporalResidualLearning(nn.Module):
    """TRL: generic and frame-specific parts from two BiLSTMs, combined residually: (B, T, F) -> (B, T, D).

    z_t = ḡ + r_t with ḡ = mean_t BiLSTM_g(f)_t (``generic="mean"``; ``"per_frame"``: g_t) and
    r_t = BiLSTM_s(f)_t; ``combine="concat"`` gives [ḡ; r_t] instead (D = 4·hidden, else 2·hidden).

    Args:
        input_dim: F of the per-frame features.
        hidden_dim: hidden units per direction of each BiLSTM.
        generic: ``mean`` (one tracklet-wide generic part) or ``per_frame``.
        combine: ``sum`` (the residual reading) or ``concat``.
        dropout: dropout on the frame features before the LSTMs.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 256,
        generic: Literal["mean", "per_frame"] = "mean",
        combine: Literal["sum", "concat"] = "sum",
        dropout: float = 0.0,
    ):
        super().__init__()
        if generic not in ("mean", "per_frame") or combine not in ("sum", "concat"):
            raise UsageError(
                f"trl generic must be 'mean' or 'per_frame' and combine 'sum' or 'concat'; got {generic!r}, {combine!r}"
            )
        self.generic_mode, self.combine = generic, combine
        self.drop = nn.Dropout(dropout)
        self.generic = nn.LSTM(input_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.specific = nn.LSTM(input_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden_dim * (2 if combine == "concat" else 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        frames = features.shape[1]
        if frames < 2:
            raise TrackletTooShortError(
                "temporal residual learning needs a tracklet of at least 2 frames, got 1"
            )
        features = self.drop(features)
        generic, _ = self.generic(features)  # (B, T, 2H)
        specific, _ = self.specific(features)  # (B, T, 2H)
        if self.generic_mode == "mean":
            generic = repeat(generic.mean(dim=1), "b d -> b t d", t=frames)
        if self.combine == "sum":
            return generic + specific  # z_t = g + r_t
        return torch.cat([generic, specific], dim=-1)


class ReIDNet(Backbone):
    """Tracklet embedding: per-frame 2D backbone, optional ST²N before it, optional TRL after it.

    ``forward_features`` gives per-frame descriptors (B, T, D), ``pool`` their temporal mean (or max), the
    tracklet embedding; ``forward_head`` applies an optional BN-neck and the identity classifier. With both
    modules off it is average pooling of per-frame CNN features (the baseline).

    Args:
        backbone: a registered 2D architecture (``resnet18``, ``resnet10``, ...).
        backbone_args: arguments of its factory.
        num_classes: identities of the classifier (0: embeddings out).
        use_st2n: align every frame with ST²N before the backbone.
        use_trl: temporal residual learning over the frame features.
        st2n_transform: ST²N's transform family.
        st2n_hidden_dim: width of ST²N's MLP.
        st2n_max_scale_change: largest relative change of scale of the warp.
        st2n_max_shift: largest shift of the warp (normalised coordinates).
        st2n_backbone_grad: let the localisation pass (backbone on the unwarped frames) train the backbone.
        trl_hidden_dim: hidden units per direction of TRL's BiLSTMs.
        trl_generic: ``mean`` or ``per_frame`` generic part.
        trl_combine: ``sum`` or ``concat``.
        temporal_pool: ``mean`` or ``max`` over frames.
        bn_neck: batch norm between the embedding and the classifier (Luo et al. 2019).
        drop_rate: dropout before the classifier.
    """

    classifier_keys = ("fc.",)

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_args: dict | None = None,
        num_classes: int = 0,
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
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if temporal_pool not in ("mean", "max"):
            raise UsageError(f"temporal_pool must be 'mean' or 'max', got {temporal_pool!r}")
        self.backbone = build(backbone, **{**(backbone_args or {}), "num_classes": 0})
        self.in_chans = getattr(self.backbone, "in_chans", 3)
        frame_dim = self.backbone.num_features
        self.st2n = (
            SpatialTemporalTransformer(
                frame_dim, st2n_hidden_dim, st2n_transform, st2n_max_scale_change, st2n_max_shift
            )
            if use_st2n
            else None
        )
        self.st2n_backbone_grad = st2n_backbone_grad
        self.trl = (
            TemporalResidualLearning(frame_dim, trl_hidden_dim, trl_generic, trl_combine) if use_trl else None
        )
        self.temporal_pool = temporal_pool
        self.num_features = self.trl.output_dim if self.trl is not None else frame_dim
        self.neck = nn.BatchNorm1d(self.num_features) if bn_neck else nn.Identity()
        if bn_neck:
            self.neck.bias.requires_grad_(False)  # BNNeck: no shift before the classifier
        self.drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.fc: nn.Module = self.make_classifier(num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        self.backbone.set_grad_checkpointing(enable)

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of every frame: (B, C, T, H, W) -> (B, T, F)."""
        return per_frame_features(self.backbone, video)

    def align(self, video: torch.Tensor) -> torch.Tensor:
        """ST²N's warp of clips (B, C, T, H, W), its descriptors from the backbone on the raw frames."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.st2n_backbone_grad):
            descriptors = self.frame_features(video)  # (B, T, F)
        return self.st2n(video, descriptors)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.st2n is not None:
            x = self.align(x)
        features = self.frame_features(x)  # (B, T, F)
        return self.trl(features) if self.trl is not None else features  # (B, T, D)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1) if self.temporal_pool == "mean" else x.amax(dim=1)  # (B, T, D) -> (B, D)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        embedding = self.pool(x)
        return embedding if pre_logits else self.classify(embedding)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Identity logits (B, classes) of tracklet embeddings (B, D): BN-neck, dropout, classifier."""
        return self.fc(self.drop(self.neck(embedding)))
