"""Vision-transformer parts shared by model families: stochastic depth, MLP, pre-norm block, tubelets."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from zoo.models.layers.conv import Conv3d

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def drop_path(
    x: Tensor, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True
) -> Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``drop_prob``."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    if scale_by_keep and keep_prob > 0.0:
        mask.div_(keep_prob)
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth per sample, on the residual branch (Huang et al., 2016)."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Transformer feed-forward: ``fc1`` -> activation -> dropout -> ``fc2`` -> dropout."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
    ):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block around a given attention module.

    ``x + drop_path(attn(norm1(x)))`` then ``x + drop_path(mlp(norm2(x)))``. Extra keyword arguments of
    ``forward`` go to the attention module; with ``return_attention=True`` the attention module must
    return ``(out, map)`` and the block returns ``(x, map)``.
    """

    def __init__(
        self,
        dim: int,
        attn: nn.Module,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = LayerNorm,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(
        self, x: Tensor, return_attention: bool = False, **attn_kwargs
    ) -> Tensor | tuple[Tensor, Tensor]:
        if return_attention:
            out, attn_map = self.attn(self.norm1(x), return_attention=True, **attn_kwargs)
        else:
            out = self.attn(self.norm1(x), **attn_kwargs)
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, attn_map) if return_attention else x


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = ``(t, p, p)``; video (B, C, T, H, W) -> (B, N, D).

    Tokens come out frame-major: index ``n = (t * H' + h) * W' + w`` over the ``(T', H', W')`` grid.
    """

    def __init__(
        self, patch_size: tuple[int, int, int] = (2, 16, 16), in_chans: int = 3, embed_dim: int = 768
    ):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = Conv3d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def grid_size(self, video_shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` for a video of shape (B, C, T, H, W)."""
        *_, T, H, W = video_shape
        pt, ph, pw = self.patch_size
        if T % pt or H % ph or W % pw:
            raise ValueError(
                f"video of T×H×W = {T}×{H}×{W} is not divisible by the tubelet size {self.patch_size}"
            )
        return T // pt, H // ph, W // pw

    def forward(self, x: Tensor) -> Tensor:
        self.grid_size(x.shape)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, T'·H'·W', D)
