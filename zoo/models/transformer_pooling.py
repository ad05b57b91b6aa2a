"""STiCA's transformer pooling: a few post-norm self-attention layers over time tokens, output = token 0.

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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["MultiHeadAttention", "TransformerLayer", "TransformerPooling", "time_tokens"]


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
