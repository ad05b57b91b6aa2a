"""GDT: Multi-modal Self-Supervision from Generalized Data Transformations.

Patrick, Asano, Kuznetsova, Fong, Henriques, Zweig, Vedaldi, ICCV 2021, https://arxiv.org/abs/2003.04298.

Method (§3): a video encoder (R(2+1)D-18) and an audio encoder (ResNet-9 over log filterbanks) each feed
an MLP head (512 → 512 → 256, BN, dropout 0.3) whose L2-normalised outputs meet in a cross-modal
contrastive loss. The views are *generalized data transformations* of a clip: time reversal (the
frames and the spectrogram flipped in time) and a time shift (a second clip of the same video, with
its own aligned audio). The representation is asked to be invariant or variant to each, giving the
nine hypotheses of the original code (``hypothesis: 1..9``, :data:`zoo.objectives.gdt.HYPOTHESES`);
the loss is :func:`zoo.objectives.gdt.gdt_hypothesis_loss` (t = 0.07, gradients through the queries,
negatives from every rank, hard negatives for variant transformations). Training (K400): SGD lr 1e-2
scaled with the number of GPUs over 10 warm-up epochs, momentum 0.9, wd 1e-5, batch 8 per GPU, 201
epochs; 30 frames at 30 fps, 112² crops; audio 1 s at 24 kHz, 40 log filterbanks (``audio_preset: gdt``).

Data: the data module gives the clips with their aligned audio (``num_views: 2, view_clips: distinct``
for the time-shift hypotheses; one view suffices otherwise); reversal is applied here. Each
transformation runs through the encoders as its own batch, as the original does (separate BN
statistics). A sample with no audio in a view it needs (the data module's zeros with an all-False
mask) is dropped from the batch and counted (``train/skipped_no_audio``), or, with
``missing_audio: error``, stops the run naming the samples — silent zeros are never learnt from.

Video–text (GDT on HowTo100M): ``text_encoder: word_embedding_text`` (frozen word vectors → FC 2048 →
max over words) replaces the audio tower, with the cross-modal baseline (hypothesis 1).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.methods.base import SSLMethod
from zoo.models.heads import MLPHead
from zoo.objectives.gdt import HYPOTHESES, GDTPair, gdt_hypothesis_loss

__all__ = ["GDT", "MissingAudioError", "drop_samples"]


class MissingAudioError(UsageError):
    """A training sample has no audio where the method needs it (``missing_audio: error``)."""


def drop_samples(batch: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """The batch without the rows where ``keep`` (B,) is False: every tensor (and mapping of tensors) with B rows."""
    size = len(keep)

    def select(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim and len(value) == size:
            return value[keep]
        if isinstance(value, dict):
            return {k: select(v) for k, v in value.items()}
        return value

    return {key: select(value) for key, value in batch.items()}


def gdt_head(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> MLPHead:
    """GDT/STiCA's ``MLP``: Dropout → Linear (no bias) → BN → ReLU → Dropout → Linear."""
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=2, dropout=dropout)


class GDT(SSLMethod):
    """GDT over ``video_views`` / ``audio_views`` (or ``video`` / ``audio``, or ``video`` / ``text``).

    Args:
        video_encoder: registered video backbone (``r2plus1d_18`` in the paper).
        video_encoder_kwargs: extra arguments of the video backbone.
        audio_encoder: registered audio backbone (``resnet9_audio``); ignored with ``text_encoder``.
        audio_encoder_kwargs: extra arguments of the audio backbone.
        text_encoder: a registered text backbone for the video–text variant (``None``: audio–visual).
        text_encoder_kwargs: extra arguments of the text backbone (e.g. ``embeddings_path``).
        hypothesis: 1..9, the time-reversal / time-shift relations of the original's ``--hypothesis``.
        temperature: t of the contrastive loss (``nce_t``, 0.07).
        proj_hidden_dim: hidden width of the MLP heads.
        proj_output_dim: dimension of the embeddings compared by the loss.
        proj_dropout: dropout before each linear layer of the heads (0.3).
        missing_audio: ``skip`` samples without audio (counted) or raise an ``error``.
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Multi-modal Self-Supervision from Generalized Data Transformations (ICCV 2021)",
        "https://arxiv.org/abs/2003.04298",
    )
    checkpoints = "gdt-*"  # catalog entries trained with this method

    def __init__(
        self,
        video_encoder: str = "r2plus1d_18",
        video_encoder_kwargs: dict[str, Any] | None = None,
        audio_encoder: str = "resnet9_audio",
        audio_encoder_kwargs: dict[str, Any] | None = None,
        text_encoder: str | None = None,
        text_encoder_kwargs: dict[str, Any] | None = None,
        hypothesis: int = 1,
        temperature: float = 0.07,
        proj_hidden_dim: int = 512,
        proj_output_dim: int = 256,
        proj_dropout: float = 0.3,
        missing_audio: Literal["skip", "error"] = "skip",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if hypothesis not in HYPOTHESES:
            raise UsageError(
                f"GDT hypothesis must be one of 1..9 (see zoo.objectives.gdt), got {hypothesis!r}"
            )
        if missing_audio not in ("skip", "error"):
            raise UsageError(f"missing_audio must be 'skip' or 'error', got {missing_audio!r}")
        self.reversal, self.shift = HYPOTHESES[hypothesis]
        self.other = "audio" if text_encoder is None else "text"
        if self.other == "text" and hypothesis != 1:
            raise UsageError(
                f"the video–text GDT uses the cross-modal baseline (hypothesis 1), got hypothesis {hypothesis}"
            )
        video = self.add_encoder("video", video_encoder, video_encoder_kwargs)
        if self.other == "audio":
            other = self.add_encoder("audio", audio_encoder, audio_encoder_kwargs)
        else:
            other = self.add_encoder("text", text_encoder, text_encoder_kwargs)
        self.heads = nn.ModuleDict(
            {
                "video": gdt_head(video.num_features, proj_hidden_dim, proj_output_dim, proj_dropout),
                self.other: gdt_head(other.num_features, proj_hidden_dim, proj_output_dim, proj_dropout),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The video representation (B, 512) of clips (B, C, T, H, W)."""
        return self.embed("video", x)

    def project(self, modality: str, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(features h (B, F), L2-normalised embedding (B, D)) of one modality's input."""
        h = self.embed(modality, x)
        return h, F.normalize(self.heads[modality](h), dim=1)

    # --- data ---------------------------------------------------------------------------------------

    @property
    def views_needed(self) -> int:
        """Distinct clips per sample: two for the time-shift hypotheses, else one."""
        return 2 if self.shift != "none" else 1

    def _clips(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Video (B, K, C, T, H, W), audio (B, K, 1, F, S) and its mask (B, K, S) of the clips the hypothesis uses."""
        k = self.views_needed
        hint = f"hypothesis {self.hparams.hypothesis} needs {k} clips: give the data module audio: true"
        if k > 1 or "video_views" in batch:
            hint += f", num_views: {k}, view_clips: distinct"
            video = self.require(batch, "video_views", hint)
            audio = self.require(batch, "audio_views", hint)
            mask = batch.get("audio_views_mask")
        else:
            video = self.require(batch, "video", hint).unsqueeze(1)
            audio = self.require(batch, "audio", hint).unsqueeze(1)
            mask = batch["audio_mask"].unsqueeze(1) if "audio_mask" in batch else None
        if video.shape[1] < k:
            raise UsageError(f"GDT {hint} (the batch has {video.shape[1]} view(s))")
        return video[:, :k], audio[:, :k], None if mask is None else mask[:, :k]

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Drop (and count) the samples without audio in a clip the hypothesis uses."""
        if self.other != "audio":
            return batch
        _, _, mask = self._clips(batch)
        if mask is None:
            return batch
        has_audio = mask.any(dim=-1).all(dim=1)  # (B,)
        missing = int((~has_audio).sum())
        self.log("train/skipped_no_audio", float(missing), on_epoch=True, reduce_fx="sum", batch_size=1)
        if not missing:
            return batch
        where = (
            batch["index"][~has_audio].tolist()
            if "index" in batch
            else (~has_audio).nonzero().flatten().tolist()
        )
        if self.hparams.missing_audio == "error" or missing == len(has_audio):
            raise MissingAudioError(
                f"GDT: samples {where} have no audio (their audio mask is all False)"
                + ("" if self.hparams.missing_audio == "error" else "; no sample of the batch has audio")
                + "; set missing_audio: skip to leave such samples out, or remove silent videos from the data"
            )
        return drop_samples(batch, has_audio)

    # --- the method ----------------------------------------------------------------------------------

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        if self.other == "text":
            features, video = self.project("video", self.require(batch, "video"))
            _, text = self.project("text", self.require(batch, "text", "give the data module text: true"))
            views = {"clip": GDTPair(video, text)}
        else:
            clips, spectrograms, _ = self._clips(batch)
            transformations = {"clip": (0, False)}
            if self.reversal != "none":
                transformations["reversed"] = (0, True)
            if self.shift != "none":
                transformations["shifted"] = (1, False)
            if self.reversal != "none" and self.shift != "none":
                transformations["shifted_reversed"] = (1, True)
            views = {}
            for name, (view, reverse) in transformations.items():
                video, audio = clips[:, view], spectrograms[:, view]  # (B, C, T, H, W), (B, 1, F, S)
                if reverse:  # time reversal of the clip and of its sound
                    video, audio = video.flip(2), audio.flip(-1)
                h, video_embedding = self.project("video", video)
                _, audio_embedding = self.project("audio", audio)
                views[name] = GDTPair(video_embedding, audio_embedding)
                if name == "clip":
                    features = h
        loss = gdt_hypothesis_loss(
            views, self.reversal, self.shift, hp.temperature, gather=hp.gather_distributed
        )
        return {"loss": loss, "features": features}
