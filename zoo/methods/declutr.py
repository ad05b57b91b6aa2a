"""DeCLUTR: Deep Contrastive Learning for Unsupervised Textual Representations.

Giorgi, Nitski, Wang, Bader, ACL 2021, https://arxiv.org/abs/2006.03659 (code: JohnGiorgi/DeCLUTR).

Method (§2): from each document, A anchor spans are drawn (lengths from Beta(4, 2) over [min, max] span
length, in separate ``max_span_len`` blocks, so anchors never overlap) and P positive spans per anchor
(lengths from Beta(2, 4); a positive may overlap, be adjacent to or lie inside its anchor) — the data
module draws them (:class:`~zoo.data.datamodules.DocumentDataModule`, the original's sampler draw for draw),
counting span lengths in the data tokenizer's own tokens and cutting each span back to text, as the original
does with its model's tokenizer.
The anchors are masked for MLM (15 %, 80/10/10) before the encoder sees them; each span becomes the mean
of the last layer's token states over its real tokens, special tokens included. The P positive embeddings
of an anchor are averaged into one (Saunshi et al. 2019), and NT-Xent (τ = 0.05, cosine similarity) makes
each anchor and its positive pick each other out of the 2N − 1 other embeddings of the batch — the anchors
of one document are negatives of each other (the original's labels are one per pair). The loss is
NT-Xent + the MLM loss of the masked anchors, with unit weights. With several processes the anchors and
positives of every rank are candidates (``gather_distributed``), and gradients equal one process's over
the whole batch (the original's ``scale_fix: true``; its paper runs used ``false``, which divides the
contrastive gradient by the number of processes).

Field by field (all follow the original code unless said):

* ``encoder``: a ``transformers`` encoder (DeCLUTR-small: distilroberta-base, -base: roberta-base); the
  MLM head is the BERT/RoBERTa head with its decoder tied to the word embeddings.
* ``temperature`` 0.05; ``mlm_probability`` 0.15; ``mlm_weight`` 1 (unit weights, as coded).
* ``mask_token_id`` / ``special_token_ids``: read from the data module's tokenizer when not given; a
  tokenizer without a mask token (``bytes``) masks with the id after its vocabulary (zoo's choice; the
  encoder's vocabulary must hold it). Random replacements are drawn from the encoder's whole vocabulary.
* Optimiser (original): AdamW lr 5e-5, eps 1e-6, weight decay 0.1 off biases and LayerNorm, 1 epoch,
  gradient clipping 1.0 — set in the recipes, not defaults of this class.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange

from zoo.catalog import Paper
from zoo.methods.base import SSLMethod
from zoo.models.text import MaskedLMHead, masked_pool
from zoo.objectives.infonce import nt_xent_loss
from zoo.objectives.masked_lm import mask_tokens, masked_lm_loss

__all__ = ["DeCLUTR", "declutr_contrastive_loss"]

_MASK_TOKENS = ("<mask>", "[MASK]")


def declutr_contrastive_loss(
    anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 0.05, gather: bool = False
) -> torch.Tensor:
    """NT-Xent between each anchor and the mean of its positives.

    Args:
        anchors: anchor embeddings (N, D).
        positives: positive embeddings (N, P, D), P per anchor.
        temperature: τ.
        gather: use every rank's anchors and positives as candidates.
    """
    pairs = torch.stack([anchors, positives.mean(dim=1)], dim=1)  # (N, 2, D)
    return nt_xent_loss(pairs, temperature, gather=gather)


def tokenizer_mask_id(tokenizer: Any) -> int:
    """The mask id of a :class:`zoo.data.text.TextTokenizer`; one past its vocabulary when it has none."""
    inner = getattr(tokenizer, "tokenizer", None)
    if getattr(inner, "mask_token_id", None) is not None:  # transformers
        return int(inner.mask_token_id)
    for token in _MASK_TOKENS:  # tokenizers
        token_id = inner.token_to_id(token) if hasattr(inner, "token_to_id") else None
        if token_id is not None:
            return int(token_id)
    return int(tokenizer.vocab_size)


def tokenizer_special_ids(tokenizer: Any) -> list[int]:
    """The ids a :class:`zoo.data.text.TextTokenizer` adds around every text, and its padding id."""
    return sorted({*tokenizer.encode_batch([""])[0], tokenizer.pad_id})


class DeCLUTR(SSLMethod):
    """DeCLUTR over ``batch["text"]`` (the anchors) and ``batch["positives"]``, both tokenised spans.

    Args:
        encoder: a registered text encoder (``sentence_encoder``: mean pooling, ``encode(list_of_str)``).
        encoder_kwargs: its arguments (``model_name_or_path`` or ``config``, ``tokenizer``).
        temperature: τ of NT-Xent (0.05).
        mlm_probability: share of the anchors' real tokens picked for MLM (0.15).
        mlm_weight: weight of the MLM loss (1; 0 trains the contrastive term alone).
        mask_token_id: the MLM mask id (None: the data module tokenizer's).
        special_token_ids: ids never masked (None: the data module tokenizer's specials and padding).
        **kwargs: optimisation settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "DeCLUTR: Deep Contrastive Learning for Unsupervised Textual Representations (ACL 2021)",
        "https://arxiv.org/abs/2006.03659",
    )
    checkpoints = "declutr*"

    def __init__(
        self,
        encoder: str = "sentence_encoder",
        encoder_kwargs: dict[str, Any] | None = None,
        temperature: float = 0.05,
        mlm_probability: float = 0.15,
        mlm_weight: float = 1.0,
        mask_token_id: int | None = None,
        special_token_ids: list[int] | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("online_probe", False)  # documents have no labels
        super().__init__(**kwargs)
        f = self.add_encoder("text", encoder, encoder_kwargs)
        self.lm_head = MaskedLMHead(f) if mlm_weight else None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        hp = self.hparams
        if tokenizer is not None and hp.mask_token_id is None:
            hp.mask_token_id = tokenizer_mask_id(tokenizer)  # saved with checkpoints
        if tokenizer is not None and hp.special_token_ids is None:
            hp.special_token_ids = tokenizer_special_ids(tokenizer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Span embeddings (N, H): mean of the last layer's states over the real tokens (N, L)."""
        return self.encoders["text"].forward_features(input_ids, attention_mask)

    def _mask_anchors(self, anchors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hp = self.hparams
        if hp.mask_token_id is None or hp.special_token_ids is None:
            raise ValueError(
                "DeCLUTR's MLM needs mask_token_id and special_token_ids (read from the data module's "
                "tokenizer at setup); give them to the model, or set mlm_weight: 0"
            )
        vocab_size = self.lm_head.decoder.out_features
        if hp.mask_token_id >= vocab_size:
            raise ValueError(
                f"mask_token_id {hp.mask_token_id} is outside the encoder's vocabulary ({vocab_size} ids); "
                f"give the encoder config vocab_size >= {hp.mask_token_id + 1}"
            )
        return mask_tokens(
            anchors["input_ids"],
            anchors["attention_mask"],
            mask_token_id=hp.mask_token_id,
            vocab_size=vocab_size,
            special_token_ids=hp.special_token_ids,
            mlm_probability=hp.mlm_probability,
        )

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        hint = "give the data module DocumentDataModule with num_anchors"
        anchors = self.require(batch, "text", hint)  # (N, L) tokenised anchor spans
        positives = self.require(batch, "positives", hint)  # (N·P, L), anchor-major
        encoder = self.encoders["text"]
        n = anchors["input_ids"].shape[0]
        out: dict[str, torch.Tensor] = {}
        if self.lm_head is not None:
            input_ids, labels = self._mask_anchors(anchors)  # anchors are masked before encoding
            tokens = encoder.token_features(input_ids, anchors["attention_mask"])  # (N, L, H)
            out["mlm_loss"] = masked_lm_loss(self.lm_head(tokens), labels)
            h_anchors = masked_pool(tokens, anchors["attention_mask"], "mean")  # (N, H)
        else:
            h_anchors = self(anchors["input_ids"], anchors["attention_mask"])
        h_positives = rearrange(
            self(positives["input_ids"], positives["attention_mask"]), "(n p) h -> n p h", n=n
        )
        out["contrastive_loss"] = declutr_contrastive_loss(
            h_anchors, h_positives, hp.temperature, gather=hp.gather_distributed
        )
        out["loss"] = out["contrastive_loss"] + hp.mlm_weight * out.get("mlm_loss", 0.0)
        out["features"] = h_anchors
        return out
