"""Support-set bottlenecks for video-text representation learning.

Patrick*, Huang*, Asano*, Metze, Hauptmann, Henriques, Vedaldi, ICLR 2021, https://arxiv.org/abs/2010.02824
(no code or weights were released).

Method (abstract): a video tower ψ and a text tower φ are trained with a contrastive term that ranks each
video's caption above the other captions of the batch and vice versa, plus a generative *cross-captioning*
term: each caption is reconstructed by a decoder that sees only a weighted combination of the visual
representations of the support set (the batch), so that related samples are pulled together instead of
every pair being pushed apart. L = L_contrastive + λ · L_caption.

Zoo's equations (every step beyond the abstract is zoo's reading; the secondary sources and what they say
are in ``shared/research/papers_c.md`` §1):

* v_i = norm(ψ(V_i)), t_i = norm(φ(T_i)) ∈ R^d — each tower's ``fc`` head is the projection into the joint
  space, so an encoder rebuilt from a checkpoint (``load_encoder``) embeds into it with ``encoder(x)``;
* L_contrastive over s_ij = ⟨t_i, v_j⟩: the bidirectional max-margin ranking loss
  Σ_i Σ_{j≠i} [m − s_ii + s_ij]_+ + [m − s_ii + s_ji]_+ (averaged over anchors), or InfoNCE;
* a_ij = softmax_{j ∈ S}(⟨q(e_i), k(v_j)⟩ / √d), v̄_i = Σ_j a_ij · val(v_j) with S the batch and the
  variants identity / full / cross (j ≠ i) / hybrid (:class:`~zoo.models.support_set.SupportSetAttention`);
* L_caption = −1/|w| Σ_i Σ_w log p(w_{i,w+1} | w_{i,≤w}, v̄_i), teacher-forced.

Field by field — what the sources fix and what is zoo's decision:

* ``contrastive`` ``max_margin`` — the secondary review's "hinge/max-margin triplet ranking loss";
  ``infonce`` is an option. ``margin`` 0.2 (zoo's: VSE++'s value; the paper's is not known),
  ``temperature`` 0.05 for InfoNCE (zoo's).
* ``attention`` ``cross`` — the arXiv abstract's "other support samples"; identity / full / hybrid are the
  ablation names of the secondary review, their form zoo's reading; ``hybrid_weight`` 0.5 (zoo's).
* ``attention_query`` ``text`` (zoo's; the source does not say which embedding queries the support set).
* ``caption_weight`` λ = 1 (zoo's; the paper tunes λ, its value is not known). λ = 0 drops the decoder.
* ``embed_dim`` 256, the decoder (``decoder_depth`` 2, ``decoder_heads`` 4, ``decoder_conditioning``
  ``prefix``: v̄_i as the first token of a causal stack) — zoo's; the paper's decoder was not read.
* ``decoder_vocab_size``: the text encoder's vocabulary (the decoder predicts the same token ids).
* the support set is the local batch (not gathered across processes; zoo's); InfoNCE negatives are gathered
  with ``gather_distributed``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from zoo.catalog import Paper
from zoo.eval.retrieval import text_video_retrieval
from zoo.methods.base import SSLMethod
from zoo.models.support_set import CaptionDecoder, SupportSetAttention, caption_loss
from zoo.objectives.infonce import cross_modal_info_nce_loss, fp32_logits
from zoo.objectives.ranking import max_margin_ranking_loss

__all__ = ["SupportSet"]

Contrastive = Literal["max_margin", "infonce"]


class SupportSet(SSLMethod):
    """Support-set bottlenecks over ``batch["video"]`` (B, C, T, H, W) and ``batch["text"]`` (B, L).

    Args:
        video_encoder: registered video backbone (ψ).
        video_encoder_kwargs: its arguments.
        text_encoder: registered text encoder (φ; ``text_encoder`` over ``transformers``).
        text_encoder_kwargs: its arguments (``config`` or ``model_name_or_path``, ``pooling``).
        embed_dim: dimension d of the joint space (each tower's ``fc`` projects into it).
        contrastive: ``max_margin`` or ``infonce``.
        margin: m of the max-margin ranking loss.
        hardest_negative: max-margin at each anchor's hardest negative (VSE++) instead of the sum.
        temperature: τ of InfoNCE.
        caption_weight: λ of the cross-captioning term (0: contrastive only, no decoder).
        attention: support-set attention variant: ``identity``, ``full``, ``cross`` or ``hybrid``.
        hybrid_weight: share of the sample's own representation in ``hybrid``.
        attention_query: ``text`` or ``video``: the sample's embedding that queries the support set.
        decoder_depth: layers of the caption decoder.
        decoder_heads: attention heads of the caption decoder.
        decoder_conditioning: ``prefix`` (v̄ as the first token) or ``memory`` (cross-attention).
        decoder_max_length: most caption tokens the decoder reads.
        decoder_vocab_size: token ids the decoder predicts (None: the text encoder's vocabulary).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Support-set bottlenecks for video-text representation learning (ICLR 2021)",
        "https://arxiv.org/abs/2010.02824",
    )
    checkpoints = "supportset*"

    def __init__(
        self,
        video_encoder: str = "r3d_tiny",
        video_encoder_kwargs: dict[str, Any] | None = None,
        text_encoder: str = "text_encoder",
        text_encoder_kwargs: dict[str, Any] | None = None,
        embed_dim: int = 256,
        contrastive: Contrastive = "max_margin",
        margin: float = 0.2,
        hardest_negative: bool = False,
        temperature: float = 0.05,
        caption_weight: float = 1.0,
        attention: str = "cross",
        hybrid_weight: float = 0.5,
        attention_query: Literal["text", "video"] = "text",
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        decoder_conditioning: Literal["prefix", "memory"] = "prefix",
        decoder_max_length: int = 64,
        decoder_vocab_size: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if contrastive not in ("max_margin", "infonce"):
            raise ValueError(f"contrastive must be 'max_margin' or 'infonce', got {contrastive!r}")
        if attention_query not in ("text", "video"):
            raise ValueError(f"attention_query must be 'text' or 'video', got {attention_query!r}")
        self.add_encoder("video", video_encoder, {**(video_encoder_kwargs or {}), "num_classes": embed_dim})
        text = self.add_encoder(
            "text", text_encoder, {**(text_encoder_kwargs or {}), "num_classes": embed_dim}
        )
        self.support_attention: SupportSetAttention | None = None
        self.decoder: CaptionDecoder | None = None
        if caption_weight:
            self.support_attention = SupportSetAttention(embed_dim, attention, hybrid_weight)  # type: ignore[arg-type]
            vocab_size = decoder_vocab_size or text.transformer.config.vocab_size
            self.decoder = CaptionDecoder(
                vocab_size, embed_dim, decoder_depth, decoder_heads, decoder_max_length, decoder_conditioning
            )

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """v = norm(ψ(V)): joint-space embeddings (B, d) of clips (B, C, T, H, W)."""
        return F.normalize(self.encoders["video"](video), dim=-1)

    def encode_text(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """t = norm(φ(T)): joint-space embeddings (N, d) of tokenised captions (N, L)."""
        return F.normalize(self.encoders["text"](text["input_ids"], text["attention_mask"]), dim=-1)

    def _captions(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        text = self.require(batch, "text", "give the data module text: true")
        if text["input_ids"].ndim != 2 or len(text["input_ids"]) != len(batch["video"]):
            raise ValueError(
                f"{type(self).__name__} needs one caption per video (captions_per_video: 1), got text "
                f"{tuple(text['input_ids'].shape)} for {len(batch['video'])} videos"
            )
        return text

    def contrastive_loss(self, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The contrastive term between captions t (B, d) and their videos v (B, d), row i ↔ row i."""
        hp = self.hparams
        if hp.contrastive == "infonce":
            return cross_modal_info_nce_loss(t, v, hp.temperature, gather=hp.gather_distributed)
        return max_margin_ranking_loss(  # s_ij = ⟨t_i, v_j⟩ (float32 under autocast), both directions
            fp32_logits(t, v), hp.margin, hardest_negative=hp.hardest_negative, reduction="mean"
        )

    def cross_captioning_loss(
        self, t: torch.Tensor, v: torch.Tensor, text: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L_caption and the support-set attention (B, B): caption i decoded from v̄_i only."""
        queries = t if self.hparams.attention_query == "text" else v
        attended, attention = self.support_attention(queries, v)  # v̄ (B, d), a (B, B)
        input_ids = text["input_ids"][:, : self.hparams.decoder_max_length]
        attention_mask = text["attention_mask"][:, : self.hparams.decoder_max_length]
        logits = self.decoder(attended, input_ids)  # (B, L, V)
        return caption_loss(logits, input_ids, attention_mask), attention

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video = self.require(batch, "video")  # (B, C, T, H, W)
        text = self._captions(batch)  # (B, L)
        h = self.embed("video", video)  # (B, F) pre-projection features (probe)
        v = F.normalize(self.encoders["video"].forward_head(h), dim=-1)  # (B, d)
        t = self.encode_text(text)  # (B, d)
        out = {"contrastive_loss": self.contrastive_loss(t, v)}
        out["loss"] = out["contrastive_loss"]
        if self.decoder is not None:
            out["caption_loss"], _ = self.cross_captioning_loss(t, v, text)
            out["loss"] = out["loss"] + self.hparams.caption_weight * out["caption_loss"]
        out["features"] = h
        return out

    def ssl_validation_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """In-batch text→video R@1 and the losses of the validation batch."""
        if "text" not in batch:
            return {}
        out = self.ssl_step(batch)
        t, v = self.encode_text(self._captions(batch)), self.encode_video(batch["video"])
        figures = text_video_retrieval(t @ v.T, torch.arange(len(v), device=v.device), ks=(1,))
        r1 = torch.tensor(figures["text_to_video/R@1"], device=v.device)
        return {k: out[k] for k in ("loss", "contrastive_loss", "caption_loss") if k in out} | {"t2v_R@1": r1}
