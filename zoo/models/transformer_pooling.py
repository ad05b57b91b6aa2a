"""Transformer pooling (TP) head: a small Transformer over a set of token features, pooled to one vector.

MMP (Huang et al. 2021, Fig. 1) puts a "Transformer pooling head" on both towers: the text tower's token
states and the video tower's clip or frame features each go through one, which returns the tower's
embedding. The paper's head sizes could not be read; this module's defaults are zoo's choice.

Tokens (B, N, D_in) are projected to ``width``, given a learned position embedding (optional), prefixed with
a learned summary token, run through ``depth`` pre-norm Transformer encoder layers with padded tokens masked
out of attention, and pooled: the summary token's state (``"cls"``) or the mean over the real tokens
(``"mean"``); a LayerNorm and a linear layer give the (B, D_out) embedding.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from zoo.errors import UsageError
from zoo.models.text import masked_pool

__all__ = ["TransformerPooling"]

TokenPooling = Literal["cls", "mean"]


class TransformerPooling(nn.Module):
    """Transformer layers over tokens (B, N, D_in) with a padding mask, pooled to (B, D_out).

    Args:
        in_dim: features per input token.
        out_dim: dimension of the pooled embedding.
        width: model width of the Transformer layers.
        depth: Transformer encoder layers.
        num_heads: attention heads per layer.
        mlp_ratio: hidden width of the feed-forward block, as a multiple of ``width``.
        max_positions: length of the learned position embedding (0: none, the tokens are a set or carry
            their own positions).
        pooling: ``"cls"`` (the summary token's state) or ``"mean"`` (mean over the real tokens).
        dropout: dropout inside the Transformer layers.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 256,
        width: int = 256,
        depth: int = 1,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        max_positions: int = 0,
        pooling: TokenPooling = "cls",
        dropout: float = 0.0,
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise UsageError(f"TransformerPooling: pooling must be 'cls' or 'mean', got {pooling!r}")
        if width % num_heads:
            raise UsageError(f"TransformerPooling: width {width} is not divisible by num_heads {num_heads}")
        self.pooling = pooling
        self.max_positions = max_positions
        self.proj = nn.Linear(in_dim, width)
        self.summary_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, max_positions, width)) if max_positions else None
        layer = nn.TransformerEncoderLayer(
            width,
            num_heads,
            int(width * mlp_ratio),
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim
        nn.init.trunc_normal_(self.summary_token, std=0.02)
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled embedding (B, D_out).

        Args:
            tokens: token features (B, N, D_in).
            mask: (B, N), true (or 1) at real tokens; None: every token is real.
        """
        b, n, _ = tokens.shape
        x = self.proj(tokens)  # (B, N, W)
        if self.position is not None:
            if n > self.max_positions:
                raise UsageError(
                    f"TransformerPooling got {n} tokens but has {self.max_positions} positions; "
                    f"raise max_positions"
                )
            x = x + self.position[:, :n]
        x = torch.cat([self.summary_token.expand(b, -1, -1), x], dim=1)  # (B, 1 + N, W)
        real = torch.ones(b, n, dtype=torch.bool, device=x.device) if mask is None else mask.to(torch.bool)
        real = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), real], dim=1)  # (B, 1 + N)
        x = self.norm(self.blocks(x, src_key_padding_mask=~real))
        pooled = x[:, 0] if self.pooling == "cls" else masked_pool(x[:, 1:], real[:, 1:], "mean")  # (B, W)
        return self.head(pooled)
