"""Support-set bottleneck blocks: attention over a support set of visual representations, and the caption
decoder that sees only its output (Patrick, Huang et al., "Support-set bottlenecks for video-text
representation learning", ICLR 2021).

:class:`SupportSetAttention` turns each sample's query embedding into a weighted sum of the support set's
visual representations (the batch is the support set). Its variants decide which members a sample may
attend to:

* ``identity``: only itself, v̄_i = val(v_i) (ordinary captioning, no bottleneck);
* ``full``: every member, itself included;
* ``cross``: every member but itself (the arXiv abstract's "other support samples");
* ``hybrid``: ``hybrid_weight`` · identity + (1 − ``hybrid_weight``) · cross.

a_ij = softmax_j(⟨q(e_i), k(v_j)⟩ / √d) and v̄_i = Σ_j a_ij · val(v_j). The paper names the four variants;
their exact form (and the hybrid mix) is zoo's reading, not read in the paper.

:class:`CaptionDecoder` is a small transformer decoder trained by teacher forcing on the caption's own token
ids: it predicts token w+1 from tokens ≤ w and v̄_i, given either as a prefix token (``prefix``) or as the
cross-attention memory (``memory``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ATTENTION_VARIANTS", "CaptionDecoder", "SupportSetAttention", "caption_loss"]

AttentionVariant = Literal["identity", "full", "cross", "hybrid"]
ATTENTION_VARIANTS = ("identity", "full", "cross", "hybrid")
Conditioning = Literal["prefix", "memory"]


class SupportSetAttention(nn.Module):
    """Scaled dot-product attention of each sample over the support set's visual representations.

    Args:
        dim: dimension of the query embeddings and visual representations.
        variant: ``identity``, ``full``, ``cross`` or ``hybrid`` (see the module docstring).
        hybrid_weight: share of the sample's own representation in ``hybrid``.
    """

    def __init__(self, dim: int, variant: AttentionVariant = "cross", hybrid_weight: float = 0.5):
        super().__init__()
        if variant not in ATTENTION_VARIANTS:
            raise ValueError(f"attention variant must be one of {ATTENTION_VARIANTS}, got {variant!r}")
        if not 0.0 <= hybrid_weight <= 1.0:
            raise ValueError(f"hybrid_weight must lie in [0, 1], got {hybrid_weight}")
        self.variant, self.hybrid_weight = variant, hybrid_weight
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def weights(self, queries: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Attention weights (B, S) of B queries (B, D) over S support members (S, D); rows sum to 1.

        Query i is support member i (the batch as support set), so ``cross`` masks the diagonal.
        """
        b, s = queries.shape[0], visual.shape[0]
        own = torch.eye(b, s, dtype=torch.bool, device=queries.device)  # (B, S)
        if self.variant == "identity":
            return own.to(queries.dtype)
        if self.variant in ("cross", "hybrid") and s < 2:
            raise ValueError(f"support-set attention '{self.variant}' needs at least 2 samples in the batch")
        logits = self.query(queries) @ self.key(visual).T / math.sqrt(queries.shape[1])  # (B, S)
        if self.variant == "full":
            return logits.softmax(dim=1)
        cross = logits.masked_fill(own, float("-inf")).softmax(dim=1)  # j ≠ i
        if self.variant == "cross":
            return cross
        return self.hybrid_weight * own.to(cross.dtype) + (1 - self.hybrid_weight) * cross

    def forward(self, queries: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v̄ (B, D), the attended visual representation of every query, and the weights (B, S).

        Args:
            queries: (B, D) embeddings of the B samples that caption (row i = support member i).
            visual: (S, D) visual representations of the support set (S ≥ B).
        """
        attention = self.weights(queries, visual)  # (B, S)
        return attention @ self.value(visual), attention


class CaptionDecoder(nn.Module):
    """A transformer decoder over token ids, conditioned on one vector per caption.

    Args:
        vocab_size: number of token ids.
        dim: width of the decoder (and of the conditioning vector).
        depth: decoder layers.
        num_heads: attention heads.
        max_length: most token positions (learned position embeddings).
        conditioning: ``prefix`` (the vector is token 0 of a causal stack) or ``memory`` (cross-attention).
        drop_rate: dropout inside the layers.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 256,
        depth: int = 2,
        num_heads: int = 4,
        max_length: int = 64,
        conditioning: Conditioning = "prefix",
        drop_rate: float = 0.1,
    ):
        super().__init__()
        if conditioning not in ("prefix", "memory"):
            raise ValueError(f"conditioning must be 'prefix' or 'memory', got {conditioning!r}")
        self.conditioning, self.max_length = conditioning, max_length
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, max_length + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer_args = dict(
            d_model=dim, nhead=num_heads, dim_feedforward=4 * dim, dropout=drop_rate, batch_first=True
        )
        if conditioning == "prefix":
            self.layers: nn.Module = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_args), depth)
        else:
            self.layers = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_args), depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, context: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, L, V): position w predicts token w + 1 from tokens ≤ w and ``context``.

        Args:
            context: (B, D) the conditioning vector v̄ of every caption.
            input_ids: (B, L) token ids, L ≤ ``max_length``.
        """
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"captions of {length} tokens exceed the decoder's max_length {self.max_length}")
        causal = nn.Transformer.generate_square_subsequent_mask(
            length + (self.conditioning == "prefix"), device=input_ids.device, dtype=context.dtype
        )
        if self.conditioning == "prefix":
            x = torch.cat([context[:, None], self.token_embed(input_ids)], dim=1)  # (B, 1 + L, D)
            x = self.layers(x + self.pos_embed[:, : length + 1], mask=causal, is_causal=True)[:, 1:]
        else:
            x = self.token_embed(input_ids) + self.pos_embed[:, 1 : length + 1]  # (B, L, D)
            x = self.layers(x, context[:, None], tgt_mask=causal, tgt_is_causal=True)
        return self.head(self.norm(x))


def caption_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Teacher-forced token cross-entropy −Σ log p(w_{t+1} | w_≤t, ·), averaged over the real target tokens.

    Args:
        logits: (B, L, V) the decoder's outputs for ``input_ids``.
        input_ids: (B, L) the caption tokens (the first one, a start token, is never a target).
        attention_mask: (B, L) 1 on real tokens, 0 on padding.
    """
    targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)  # (B, L - 1)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)
