"""MMP: Multilingual Multimodal Pre-training for zero-shot cross-lingual transfer of vision-language models.

Huang*, Patrick*, Hu, Neubig, Metze, Hauptmann, NAACL 2021, https://arxiv.org/abs/2103.08849 (no code
or weights were released; only the abstract, the opening of §1 and the caption of Fig. 1 could be read).

Method (Fig. 1): a video v and its captions x and y in two languages form a triple (x, v, y). A
multilingual text encoder followed by a Transformer pooling (TP) head embeds x and y, a video encoder
followed by a TP head embeds v, and three contrastive objectives align the triple: *inter-modal* (each
caption against its video), *intra-modal* (the two captions against each other) and *conditional
cross-lingual* (the two captions against each other given the video). The headline is zero-shot
cross-lingual transfer: a model trained with English video-text data retrieves videos from queries in
other languages, where an English-only model degrades.

Here each training video keeps every caption of the data module's ``languages`` (``captions_per_video:
all``); the step draws x among its captions in ``pivot_language`` and y among those in ``pair_languages``.

Field by field — what follows the paper and what is zoo's decision:

* text encoder: a ``transformers`` encoder (paper: a multilingual LM — mBERT is cited, which one is the
  default could not be read); the recipes build a tiny BERT over byte-level tokens, so every language
  shares one vocabulary. Its token states (B, L, H) feed the text TP head (paper: TP head on the text side).
* video encoder: any registered backbone; its feature map (B, C, T', H', W') becomes T'·H'·W' tokens
  (``video_tokens: feature_map``), or a per-frame model's (B, T, D) output is taken as is
  (``video_tokens: sequence``) (paper: pre-extracted features + TP head; which features: not read).
* TP heads (:class:`~zoo.models.transformer_pooling.MaskedTransformerPooling`): width, depth, heads, pooling
  and ``embed_dim`` are zoo's choice (the paper's sizes were not read); mean pooling by default, as the summary token
  collapsed the embeddings at lr 1e-3 on SynthMotion.
* inter-modal term, eq. L(x, v) + L(y, v): symmetric InfoNCE between each caption and its video (zoo's
  reading; NCE vs max-margin was not read). ``video_paired_translations: false`` drops L(y, v): y is
  then a text-only translation pair (the English-video setting of the zero-shot table).
* intra-modal term L(x, y): symmetric InfoNCE between the two captions of a video (zoo's reading).
* conditional cross-lingual term: the least specified part. Zoo's reading: a fusion head scores a
  caption given a video, f(t, v) = MLP([t; v; t ⊙ v]); x given its video v_i must pick its own y out of
  every caption y_j of the batch, all given the same v_i, and the other way round — so the video is the
  context of the match, not the shortcut to it. Its negatives are the local batch's (not gathered).
* ``temperature`` 0.05, unit term weights (``inter_weight``, ``intra_weight``, ``conditional_weight``):
  zoo's choice (the paper's values were not read).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.retrieval import text_video_retrieval
from zoo.methods.base import SSLMethod
from zoo.models.transformer_pooling import MaskedTransformerPooling, TokenPooling
from zoo.objectives.infonce import cross_modal_info_nce_loss, fp32_einsum, fp32_normalize

__all__ = ["MMP", "ConditionalFusion", "conditional_cross_lingual_loss"]

VideoTokens = Literal["feature_map", "sequence"]


class ConditionalFusion(nn.Module):
    """f(t, v): a caption embedding given a video embedding, MLP([t; v; t ⊙ v]) (zoo's choice).

    Args:
        dim: dimension of the text and video embeddings (and of the output).
        hidden_dim: hidden width of the MLP.
    """

    def __init__(self, dim: int, hidden_dim: int = 512):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))

    def forward(self, text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """Fused embeddings (..., D) of L2-normalised ``text`` and ``video`` (..., D), broadcast together."""
        text, video = torch.broadcast_tensors(F.normalize(text, dim=-1), F.normalize(video, dim=-1))
        return self.mlp(torch.cat([text, video, text * video], dim=-1))


def conditional_cross_lingual_loss(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, fusion: nn.Module, temperature: float = 0.05
) -> torch.Tensor:
    """Contrast x against y given the video: f(x_i, v_i) picks f(y_i, v_i) among f(y_j, v_i), j over the batch.

    Both directions (x→y and y→x), averaged. Every candidate of row i is fused with the same video v_i.

    Args:
        x: first-language caption embeddings (B, D).
        y: second-language caption embeddings (B, D), row i a caption of the same video as x_i.
        v: video embeddings (B, D).
        fusion: f(t, v) -> (..., D), e.g. :class:`ConditionalFusion`.
        temperature: τ.
    """
    b = x.shape[0]
    given_v = v[:, None, :]  # (B, 1, D): row i's video for every candidate j
    fused_x = fp32_normalize(fusion(x[None, :, :], given_v))  # (B, B, D): f(x_j, v_i)
    fused_y = fp32_normalize(fusion(y[None, :, :], given_v))  # (B, B, D): f(y_j, v_i)
    own = torch.arange(b, device=x.device)
    query_x, query_y = fused_x[own, own], fused_y[own, own]  # (B, D): f(x_i, v_i), f(y_i, v_i)
    logits_xy = fp32_einsum("id,ijd->ij", query_x, fused_y) / temperature  # (B, B), float32 under autocast
    logits_yx = fp32_einsum("id,ijd->ij", query_y, fused_x) / temperature
    return (F.cross_entropy(logits_xy, own) + F.cross_entropy(logits_yx, own)) / 2


class MMP(SSLMethod):
    """MMP over ``batch["video"]`` and every caption of each video (``text`` (N, L), ``caption_to_video``,
    ``text_language``).

    Args:
        video_encoder: registered video backbone (``r3d_tiny``, ``frame_resnet18``, ...).
        video_encoder_kwargs: its arguments.
        text_encoder: registered text encoder (``text_encoder``: a ``transformers`` model).
        text_encoder_kwargs: its arguments (``model_name_or_path``, or a ``config`` for random weights).
        video_tokens: ``feature_map`` ((B, C, ...) maps: one token per position) or ``sequence`` ((B, T, D)).
        embed_dim: dimension of the joint embedding space.
        tp_width: width of both TP heads.
        tp_depth: Transformer layers of each TP head.
        tp_heads: attention heads of each TP head.
        tp_pooling: ``cls`` or ``mean`` pooling of the TP heads.
        video_positions: learned positions of the video TP head (its most tokens; 0: none).
        fusion_hidden_dim: hidden width of the conditional fusion head.
        temperature: τ of every contrastive term.
        inter_weight: weight of the inter-modal term L(x, v) + L(y, v).
        intra_weight: weight of the intra-modal term L(x, y).
        conditional_weight: weight of the conditional cross-lingual term.
        video_paired_translations: L(y, v) is part of the inter-modal term; false: y is a text-only
            translation of x (only x meets the video in the inter-modal term).
        pivot_language: the language of x.
        pair_languages: the languages y is drawn from (None: every language of the data but the pivot).
        languages: the names of ``text_language``'s indices (None: the data module's ``languages``).
        **kwargs: optimisation and probe settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Multilingual Multimodal Pre-training for Zero-Shot Cross-Lingual Transfer of Vision-Language Models "
        "(NAACL 2021)",
        "https://arxiv.org/abs/2103.08849",
    )
    checkpoints = None  # no published checkpoint: neither code nor weights were released

    def __init__(
        self,
        video_encoder: str = "r3d_tiny",
        video_encoder_kwargs: dict[str, Any] | None = None,
        text_encoder: str = "text_encoder",
        text_encoder_kwargs: dict[str, Any] | None = None,
        video_tokens: VideoTokens = "feature_map",
        embed_dim: int = 256,
        tp_width: int = 256,
        tp_depth: int = 1,
        tp_heads: int = 4,
        tp_pooling: TokenPooling = "mean",
        video_positions: int = 64,
        fusion_hidden_dim: int = 512,
        temperature: float = 0.05,
        inter_weight: float = 1.0,
        intra_weight: float = 1.0,
        conditional_weight: float = 1.0,
        video_paired_translations: bool = True,
        pivot_language: str = "en",
        pair_languages: list[str] | None = None,
        languages: list[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if video_tokens not in ("feature_map", "sequence"):
            raise UsageError(f"MMP: video_tokens must be 'feature_map' or 'sequence', got {video_tokens!r}")
        if pair_languages is not None and pivot_language in pair_languages:
            raise UsageError(
                f"MMP: pair_languages {pair_languages} holds the pivot_language {pivot_language!r}"
            )
        f_video = self.add_encoder("video", video_encoder, video_encoder_kwargs)
        f_text = self.add_encoder("text", text_encoder, text_encoder_kwargs)
        head = dict(out_dim=embed_dim, width=tp_width, depth=tp_depth, num_heads=tp_heads, pooling=tp_pooling)
        self.video_pool = MaskedTransformerPooling(
            f_video.num_features, max_positions=video_positions, **head
        )
        self.text_pool = MaskedTransformerPooling(f_text.num_features, **head)  # the LM carries the positions
        self.fusion = ConditionalFusion(embed_dim, fusion_hidden_dim) if conditional_weight else None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.hparams.languages is None and getattr(datamodule, "hparams", None) is not None:
            found = datamodule.hparams.get("languages")
            self.hparams.languages = list(found) if found else None  # saved with checkpoints

    # --- towers -----------------------------------------------------------------------------------

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """Joint-space video embeddings (B, D) of clips (B, C, T, H, W)."""
        return self._pool_video(self.encoders["video"].forward_features(video))

    def _pool_video(self, features: torch.Tensor) -> torch.Tensor:
        """The video TP head over the encoder's feature map (B, C, ...) or sequence (B, T, D)."""
        if self.hparams.video_tokens == "feature_map":
            features = rearrange(features, "b c ... -> b (...) c")  # (B, T'·H'·W', C)
        return self.video_pool(features)

    def embed_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Joint-space caption embeddings (N, D) of tokenised captions (N, L)."""
        states = self.encoders["text"].token_features(tokens["input_ids"], tokens["attention_mask"])
        return self.text_pool(states, tokens["attention_mask"])  # (N, L, H) -> (N, D)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Joint-space video embeddings (B, D)."""
        return self.embed_video(video)

    # --- the triple (x, v, y) -------------------------------------------------------------------------

    def _language_ids(self) -> tuple[int, list[int]]:
        hp = self.hparams
        if not hp.languages:
            raise UsageError(
                "MMP needs captions by language: give the data module `languages: [en, de, ...]`"
            )
        if hp.pivot_language not in hp.languages:
            raise UsageError(
                f"MMP: pivot_language {hp.pivot_language!r} is not among languages {hp.languages}"
            )
        pairs = hp.pair_languages or [name for name in hp.languages if name != hp.pivot_language]
        missing = [name for name in pairs if name not in hp.languages]
        if missing or not pairs:
            raise UsageError(
                f"MMP: pair_languages {pairs} must be a non-empty subset of languages {hp.languages}"
            )
        return hp.languages.index(hp.pivot_language), [hp.languages.index(name) for name in pairs]

    def select_pairs(self, batch: dict[str, Any], draw: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption rows of x and y for every video: (B,) indices into the batch's (N, L) captions.

        Args:
            batch: a batch with ``caption_to_video`` and ``text_language`` (``captions_per_video: all``).
            draw: draw x and y at random among each video's candidates; false: take the first ones.
        """
        hint = "give the data module text: true, captions_per_video: all and languages"
        caption_to_video = self.require(batch, "caption_to_video", hint)  # (N,)
        language = self.require(batch, "text_language", hint)  # (N,)
        pivot, pairs = self._language_ids()
        num_videos = self.require(batch, "video").shape[0]
        is_pair = torch.isin(language, torch.tensor(pairs, device=language.device))
        rows = []
        for wanted, names in ((language == pivot, [self.hparams.pivot_language]), (is_pair, None)):
            # (B, N): the captions of each video in the wanted languages
            candidates = (
                caption_to_video[None, :] == torch.arange(num_videos, device=language.device)[:, None]
            ) & wanted
            empty = (~candidates.any(dim=1)).nonzero().flatten()
            if len(empty):
                where = batch["index"][empty[0]].item() if "index" in batch else empty[0].item()
                wanted_names = names or [self.hparams.languages[i] for i in pairs]
                raise UsageError(
                    f"MMP: the video at dataset index {where} has no caption in {', '.join(wanted_names)}"
                )
            if draw:
                scores = torch.rand(candidates.shape, device=language.device)
            else:  # the first candidate scores highest
                scores = -torch.arange(candidates.shape[1], device=language.device, dtype=torch.float)
                scores = scores.expand_as(candidates)
            rows.append(scores.masked_fill(~candidates, -torch.inf).argmax(dim=1))  # (B,)
        return rows[0], rows[1]

    def _losses(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        nce = dict(temperature=hp.temperature, gather=hp.gather_distributed)
        out: dict[str, torch.Tensor] = {}
        loss = x.new_zeros(())
        if hp.inter_weight:
            out["inter_loss"] = cross_modal_info_nce_loss(x, v, **nce)  # L(x, v)
            if hp.video_paired_translations:
                out["inter_loss"] = out["inter_loss"] + cross_modal_info_nce_loss(y, v, **nce)  # + L(y, v)
            loss = loss + hp.inter_weight * out["inter_loss"]
        if hp.intra_weight:
            out["intra_loss"] = cross_modal_info_nce_loss(x, y, **nce)  # L(x, y)
            loss = loss + hp.intra_weight * out["intra_loss"]
        if self.fusion is not None:
            out["conditional_loss"] = conditional_cross_lingual_loss(x, y, v, self.fusion, hp.temperature)
            loss = loss + hp.conditional_weight * out["conditional_loss"]
        out["loss"] = loss
        return out

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video = self.require(batch, "video")  # (B, C, T, H, W)
        captions = self.require(batch, "text", "give the data module text: true")  # (N, L)
        x_rows, y_rows = self.select_pairs(batch, draw=True)
        both = torch.cat([x_rows, y_rows])  # (2B,)
        text = self.embed_text({key: value[both] for key, value in captions.items()})  # (2B, D)
        x, y = text.chunk(2)
        features = self.encoders["video"].forward_features(video)
        pooled = self.encoders["video"].forward_head(features, pre_logits=True)  # (B, F): the probe's
        out = self._losses(x, y, self._pool_video(features))
        out["features"] = pooled
        return out

    @torch.no_grad()
    def ssl_validation_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """In-batch text→video R@1 per language (every caption of the batch against its videos)."""
        if "caption_to_video" not in batch or "text_language" not in batch:
            return {}
        names = [self.hparams.languages[i] for i in batch["text_language"].tolist()]
        text = F.normalize(self.embed_text(batch["text"]), dim=-1)  # (N, D)
        video = F.normalize(self.embed_video(batch["video"]), dim=-1)  # (B, D)
        metrics = text_video_retrieval(text @ video.T, batch["caption_to_video"], names)
        return {
            f"{name}_t2v_R1": torch.tensor(metrics[f"{name}/text_to_video/R@1"])
            for name in sorted(set(names))
        }
