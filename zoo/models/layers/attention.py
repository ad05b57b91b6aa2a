"""Scaled dot-product attention behind one function, and the multi-head self-attention module.

``attention(q, k, v)`` computes ``softmax(q kᵀ / sqrt(d)) v`` for ``(B, heads, N, d)`` tensors with one
of three backends, numerically equivalent:

- ``"sdpa"`` (default): :func:`torch.nn.functional.scaled_dot_product_attention`, which picks the
  flash / memory-efficient kernels where they apply (also on CPU), so no ``N×N`` matrix is stored;
- ``"xformers"``: ``xformers.ops.memory_efficient_attention`` (CUDA tensors, ``pip install xformers``);
- ``"math"``: the explicit softmax, for reference and for debugging.

The backend is chosen by the ``backend`` argument, else by the environment variable ``ZOO_ATTENTION``,
else ``"sdpa"``.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKENDS = ("sdpa", "xformers", "math")
ENV_VAR = "ZOO_ATTENTION"


def resolve_backend(backend: str | None = None) -> str:
    """The backend to use: ``backend`` if given, else ``$ZOO_ATTENTION``, else ``"sdpa"``."""
    name = backend or os.environ.get(ENV_VAR) or "sdpa"
    if name not in BACKENDS:
        source = "argument 'backend'" if backend else f"environment variable {ENV_VAR}"
        raise ValueError(f"unknown attention backend {name!r} (from the {source}); choose one of {BACKENDS}")
    return name


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    backend: str | None = None,
) -> Tensor:
    """``softmax(q kᵀ / sqrt(d) + mask) v`` for q ``(B, h, Nq, d)``, k and v ``(B, h, Nk, d)``.

    ``attn_mask`` follows SDPA: boolean (True = attend) or additive float, broadcastable to
    ``(B, h, Nq, Nk)``. ``dropout_p`` drops attention probabilities; pass 0 in eval mode.
    """
    name = resolve_backend(backend)
    if name == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    if name == "xformers":
        return _xformers_attention(q, k, v, attn_mask, dropout_p)
    return math_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


def attention_probs(q: Tensor, k: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """The attention matrix ``softmax(q kᵀ / sqrt(d) + mask)``, shape ``(B, h, Nq, Nk)``."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = (
            scores.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else scores + attn_mask
        )
    return scores.softmax(dim=-1)


def math_attention(
    q: Tensor, k: Tensor, v: Tensor, *, attn_mask: Tensor | None = None, dropout_p: float = 0.0
) -> Tensor:
    """The explicit form: holds the whole ``(B, h, Nq, Nk)`` matrix."""
    probs = attention_probs(q, k, attn_mask)
    if dropout_p > 0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v


def _xformers_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout_p: float
) -> Tensor:
    try:
        from xformers.ops import memory_efficient_attention
    except ImportError as exc:
        raise RuntimeError(
            "attention backend 'xformers' needs the xformers package (pip install 'zoo[gpu]'); "
            f"use backend='sdpa' or unset {ENV_VAR}"
        ) from exc
    if not q.is_cuda:
        raise RuntimeError(f"attention backend 'xformers' runs on CUDA tensors only, got device {q.device}")
    bias = None
    if attn_mask is not None:
        shape = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        if attn_mask.dtype == torch.bool:
            bias = torch.zeros(shape, dtype=q.dtype, device=q.device).masked_fill(~attn_mask, -math.inf)
        else:
            bias = attn_mask.to(q.dtype).expand(shape)
    # xformers takes (B, N, h, d)
    out = memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, p=dropout_p
    )
    return out.transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention (ViT): ``qkv`` Linear, :func:`attention`, output ``proj``."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        backend: str | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.backend = backend
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: Tensor, attn_mask: Tensor | None = None, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``x`` (B, N, C) -> (B, N, C); with ``return_attention`` also the map (B, h, N, N)."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout_p = self.attn_drop if self.training else 0.0
        if return_attention:  # explicit matrix, for visualisation
            probs = attention_probs(q, k, attn_mask)
            out = F.dropout(probs, p=dropout_p) @ v if dropout_p > 0 else probs @ v
        else:
            out = attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, backend=self.backend)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, N, C)))
        return (out, probs) if return_attention else out
