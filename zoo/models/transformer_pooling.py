"""Transformer pooling heads: STiCA's over time tokens (output = token 0) and MMP's over masked tokens.

Space-Time Crop & Attend (Patrick et al. 2021, https://arxiv.org/abs/2103.10211, §3.2) pools a video
feature map (B, C, T, H, W) by averaging over space into T time tokens (B, T, C) and running a small
transformer over them; the pooled vector is the first token's output (there is no CLS token). The
attention is XLM-style and, by default, has *only* query and key projections (values are the tokens
themselves, no output projection); LayerNorm (eps 1e-12) comes after each residual (post-norm); the
FFN is C → 2048 → C with GELU; the scale is 1/√(C/heads); no positional embedding. Weights are
initialised N(0, 0.02) (biases 0, LayerNorm (1, 0)).

The number of time tokens is an argument of :meth:`TransformerPooling.forward`, taken from the full
feature map by the caller, and tokens are formed by ``einops`` over named axes: a temporal crop is
resampled to that many tokens per sample and samples are never mixed (the original's
``transformer_time_dim`` had to equal the map's temporal size by hand, else its ``view`` mixed them).

:class:`MaskedTransformerPooling` is MMP's head (Huang et al. 2021, Fig. 1): a "Transformer pooling
head" on both towers; the text tower's token states and the video tower's clip or frame features each
go through one, which returns the tower's embedding. The paper's head sizes could not be read; this module's defaults are zoo's choice.

Tokens (B, N, D_in) are projected to ``width``, given a learned position embedding (optional), prefixed with
a learned summary token, run through ``depth`` pre-norm Transformer encoder layers with padded tokens masked
out of attention, and pooled: the summary token's state (``"cls"``) or the mean over the real tokens
(``"mean"``); a LayerNorm and a linear layer give the (B, D_out) embedding.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.errors import UsageError
from zoo.models.text import masked_pool

__all__ = [
    "MaskedTransformerPooling",
    "MultiHeadAttention",
    "TokenPooling",
    "TransformerLayer",
    "TransformerPooling",
    "time_tokens",
]


def time_tokens(feature_map: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Average a map (B, C, T, H, W) over space and resample time to ``num_tokens``: (B, num_tokens, C).

    Same as ``AdaptiveAvgPool3d((num_tokens, 1, 1))``: a shorter (cropped) time axis is stretched.
    """
    pooled = F.adaptive_avg_pool3d(feature_map, (num_tokens, 1, 1))  # (B, C, N, 1, 1)
    return rearrange(pooled, "b c n 1 1 -> b n c")


class MultiHeadAttention(nn.Module):
    """Self-attention with query and key projections; values and output projections only if ``qkv``.

    Args:
        dim: token width.
        num_heads: attention heads (the scale is 1/√(dim / num_heads)).
        dropout: dropout on the attention weights.
        qkv: add the value and output projections (the original's ``--qkv_mha``).
    """

    def __init__(self, dim: int, num_heads: int = 4, dropout: float = 0.0, qkv: bool = False):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.q_lin = nn.Linear(dim, dim)
        self.k_lin = nn.Linear(dim, dim)
        self.v_lin = nn.Linear(dim, dim) if qkv else nn.Identity()
        self.out_lin = nn.Linear(dim, dim) if qkv else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.num_heads
        q = rearrange(self.q_lin(x), "b n (h d) -> b h n d", h=heads)  # (B, h, N, d)
        k = rearrange(self.k_lin(x), "b n (h d) -> b h n d", h=heads)
        v = rearrange(self.v_lin(x), "b n (h d) -> b h n d", h=heads)
        weights = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (B, h, N, N)
        weights = F.dropout(weights.softmax(dim=-1), self.dropout, self.training)
        return self.out_lin(rearrange(weights @ v, "b h n d -> b n (h d)"))


class FFN(nn.Module):
    """Linear → GELU → Linear."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(F.gelu(self.lin1(x)))


class TransformerLayer(nn.Module):
    """Post-norm layer: x = LN(x + MHA(x)); x = LN(x + FFN(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float, qkv: bool):
        super().__init__()
        self.dropout = dropout
        self.mha = MultiHeadAttention(dim, num_heads, dropout, qkv)
        self.norm1 = nn.LayerNorm(dim, eps=1e-12)
        self.ffn = FFN(dim, ffn_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + F.dropout(self.mha(x), self.dropout, self.training))
        return self.norm2(x + self.ffn(x))


class TransformerPooling(nn.Module):
    """Time tokens of a feature map → post-norm transformer → token 0: (B, C, T, H, W) -> (B, C).

    Args:
        dim: channels of the feature map (token width).
        num_layers: transformer layers (0: plain global average pooling).
        num_heads: attention heads.
        ffn_dim: FFN hidden width.
        dropout: dropout of the attention weights and outputs.
        qkv: value and output projections in the attention.
    """

    def __init__(
        self,
        dim: int = 512,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_dim: int = 2048,
        dropout: float = 0.0,
        qkv: bool = False,
    ):
        super().__init__()
        self.transformer = nn.ModuleList(
            TransformerLayer(dim, num_heads, ffn_dim, dropout, qkv) for _ in range(num_layers)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, feature_map: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """Pool ``feature_map`` (B, C, T', H', W'), a crop of a map with ``num_tokens`` time steps."""
        if not self.transformer:
            return feature_map.mean(dim=(2, 3, 4))  # GAP
        x = time_tokens(feature_map, num_tokens)  # (B, N, C)
        for layer in self.transformer:
            x = layer(x)
        return x[:, 0]  # token 0 (no CLS token)


TokenPooling = Literal["cls", "mean"]


class MaskedTransformerPooling(nn.Module):
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
            raise UsageError(f"MaskedTransformerPooling: pooling must be 'cls' or 'mean', got {pooling!r}")
        if width % num_heads:
            raise UsageError(
                f"MaskedTransformerPooling: width {width} is not divisible by num_heads {num_heads}"
            )
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
