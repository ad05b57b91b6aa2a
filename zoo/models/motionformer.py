"""Video vision transformers of Motionformer (Patrick et al., "Keeping Your Eye on the Ball: Trajectory
Attention in Video Transformers", NeurIPS 2021): trajectory attention, its Orthoformer approximation,
and the joint and divided space-time baselines of the same paper.

A clip (B, C, T, H, W) is cut into 2×16×16 tubelets (F = T/2 frames of P = (H/16)·(W/16) patches), a CLS
token is prepended, and positional embeddings are separate: a spatial table (1, 1 + P, C) tiled over the
frames plus a temporal table (1, F, C) repeated over the patches. Pre-norm blocks follow (drop path
rising linearly), then a final LayerNorm; the head takes the CLS token through ``pre_logits``
(Linear + Tanh) into ``head`` (a Linear, or one Linear per output for EPIC-Kitchens' verbs and nouns).

Parameter names follow the original ``VisionTransformer`` so that the converter
(:mod:`zoo.convert.motionformer`) only renames the tubelet embedding and the EPIC heads. The original
returns softmax probabilities in eval mode; this model always returns logits.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from zoo.models.base import Backbone
from zoo.models.layers.attention import Attention, attention, attention_probs
from zoo.models.layers.blocks import Block, DropPath, LayerNorm, Mlp, PatchEmbed3D
from zoo.models.layers.frames import residual_frames
from zoo.models.layers.trajectory import TrajectoryAttention
from zoo.registry import register_model

ATTENTION_TYPES = ("trajectory", "orthoformer", "joint", "divided")
HEAD_ACTIVATIONS = {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU}


def resize_spatial_pos_embed(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """Resize a (1, 1 + G·G, C) table (CLS first) to a (gh, gw) patch grid, bicubically.

    For square grids this is the original's call, ``F.interpolate(scale_factor=sqrt(P_new / P_old))``
    (not ``size=``), so converted weights give the original's numbers at 336 px.
    """
    old = math.isqrt(pos_embed.shape[1] - 1)
    if old * old != pos_embed.shape[1] - 1:
        raise ValueError(f"spatial pos_embed of {pos_embed.shape[1] - 1} patches is not a square grid")
    if grid == (old, old):
        return pos_embed
    cls_pos, table = pos_embed[:, :1], rearrange(pos_embed[:, 1:], "1 (h w) c -> 1 c h w", h=old)
    resized = None
    if grid[0] == grid[1]:
        resized = F.interpolate(table, scale_factor=math.sqrt(grid[0] * grid[1] / old**2), mode="bicubic")
    if resized is None or resized.shape[-2:] != grid:  # non-square, or the scale rounded down a pixel
        resized = F.interpolate(table, size=grid, mode="bicubic")
    return torch.cat([cls_pos, rearrange(resized, "1 c h w -> 1 (h w) c")], dim=1)


def resize_temporal_embed(temp_embed: Tensor, num_frames: int) -> Tensor:
    """Resize a (1, F, C) temporal table to ``num_frames`` entries by linear interpolation."""
    if temp_embed.shape[1] == num_frames:
        return temp_embed
    resized = F.interpolate(temp_embed.transpose(1, 2), size=num_frames, mode="linear", align_corners=False)
    return resized.transpose(1, 2)


class DividedAttention(nn.Module):
    """TimeSformer attention within groups: ``axis="time"`` (a patch across frames) or ``"space"``.

    Patch tokens attend within their group plus the CLS token; the CLS token attends to all tokens.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        axis: str,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        backend: str | None = None,
    ):
        super().__init__()
        if axis not in ("time", "space"):
            raise ValueError(f"axis must be 'time' or 'space', got {axis!r}")
        self.num_heads, self.axis, self.attn_drop, self.backend = num_heads, axis, attn_drop, backend
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: Tensor, num_frames: int, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, 1 + F·P, C) -> (B, 1 + F·P, C); the map is (B, groups, h, group, 1 + group)."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout_p = self.attn_drop if self.training else 0.0
        cls_out = attention(q[:, :, :1], k, v, backend=self.backend)  # (B, h, 1, d)
        # group the patch tokens: a patch over time, or a frame over space
        if self.axis == "time":
            to_groups, from_groups = "b h (f n) d -> (b n) h f d", "(b n) h f d -> b h (f n) d"
        else:
            to_groups, from_groups = "b h (f n) d -> (b f) h n d", "(b f) h n d -> b h (f n) d"
        q_, k_, v_ = (rearrange(t[:, :, 1:], to_groups, f=num_frames) for t in (q, k, v))
        groups = q_.shape[0] // B
        cls_k, cls_v = (repeat(t[:, :, :1], "b h 1 d -> (b g) h 1 d", g=groups) for t in (k, v))
        k_, v_ = torch.cat([cls_k, k_], dim=2), torch.cat([cls_v, v_], dim=2)
        if return_attention:
            probs = attention_probs(q_, k_)
            out = F.dropout(probs, p=dropout_p) @ v_ if dropout_p > 0 else probs @ v_
        else:
            out = attention(q_, k_, v_, dropout_p=dropout_p, backend=self.backend)
        out = rearrange(out, from_groups, b=B)
        out = rearrange(torch.cat([cls_out, out], dim=2), "b h n d -> b n (h d)")
        out = self.proj_drop(self.proj(out))
        if return_attention:
            return out, rearrange(probs, "(b g) h i j -> b g h i j", b=B)
        return out


class DividedSpaceTimeBlock(nn.Module):
    """TimeSformer block: temporal attention (added without drop path, as the original), then spatial
    attention, then the MLP. ``norm3``/``timeattn`` are the temporal part, ``norm1``/``attn`` the spatial."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        backend: str | None = None,
    ):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = DividedAttention(dim, num_heads, "space", qkv_bias, attn_drop, drop, backend)
        self.timeattn = DividedAttention(dim, num_heads, "time", qkv_bias, attn_drop, drop, backend)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.norm3 = LayerNorm(dim)

    def forward(
        self, x: Tensor, num_frames: int, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        time_out = self.timeattn(self.norm3(x), num_frames, return_attention=return_attention)
        if return_attention:
            time_out, time_map = time_out
        x = x + time_out
        x = x + self.drop_path(self.attn(self.norm1(x), num_frames))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, time_map) if return_attention else x


class VideoTransformer(Backbone):
    """Video ViT with trajectory, Orthoformer, joint or divided space-time attention.

    Args:
        img_size: frame size the model is built for (the embeddings resize to other sizes).
        num_frames: clip length the model is built for (the temporal table resizes to others).
        patch_size: spatial side of a tubelet, in pixels.
        tubelet_size: frames per tubelet (tubelets are ``tubelet_size × patch_size × patch_size``).
        in_chans: input channels.
        num_classes: an int (0: no head), or a sequence for several heads (EPIC-Kitchens: (97, 300)).
        attn_type: "trajectory", "orthoformer", "joint" or "divided".
        use_original_code: trajectory attention as the released weights were trained (see
            :class:`~zoo.models.layers.trajectory.TrajectoryAttention`).
        num_landmarks: Orthoformer landmarks.
        chunk_size: queries per chunk of exact trajectory attention.
        attention_backend: "sdpa", "xformers" or "math" (default: $ZOO_ATTENTION, else SDPA).
        pos_embed_grid: side of the stored spatial table (default ``img_size // patch_size``). The
            336-px checkpoints store a 14×14 table and resize it on the fly; they use 14.
        frame_difference: feed residual frames (differences of consecutive frames, a zero frame
            appended) instead of RGB frames; a static background then cancels out.
        head_act: activation of ``pre_logits`` ("tanh", "gelu", "relu"), or None for no ``pre_logits``.
        activation_checkpointing: re-compute each block's activations in the backward pass instead of
            holding them (``torch.utils.checkpoint``, non-reentrant; the same as
            ``set_grad_checkpointing(True)``): the same outputs and gradients for less memory and about
            one more forward pass of compute. It composes with DDP and FSDP.
    """

    classifier_name = "head"
    classifier_keys = ("head.",)

    def __init__(
        self,
        img_size: int = 224,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        num_classes: int | Sequence[int] = 400,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
        pos_drop_rate: float = 0.0,
        head_drop_rate: float = 0.0,
        attn_type: str = "trajectory",
        use_original_code: bool = True,
        num_landmarks: int = 128,
        chunk_size: int | None = 1024,
        attention_backend: str | None = None,
        pos_embed_grid: int | None = None,
        head_act: str | None = "tanh",
        frame_difference: bool = False,
        activation_checkpointing: bool = False,
    ):
        super().__init__()
        if attn_type not in ATTENTION_TYPES:
            raise ValueError(f"attn_type must be one of {ATTENTION_TYPES}, got {attn_type!r}")
        if head_act is not None and head_act not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_act must be one of {sorted(HEAD_ACTIVATIONS)} or None, got {head_act!r}")
        self.attn_type = attn_type
        self.num_classes = num_classes if isinstance(num_classes, int) else tuple(num_classes)
        self.embed_dim = self.num_features = embed_dim
        self.in_chans = in_chans
        self.frame_difference = frame_difference

        self.patch_embed = PatchEmbed3D((tubelet_size, patch_size, patch_size), in_chans, embed_dim)
        grid = pos_embed_grid or img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))  # spatial, CLS first
        self.temp_embed = nn.Parameter(torch.zeros(1, num_frames // tubelet_size, embed_dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)

        block_args = dict(
            attn_type=attn_type, dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
            drop=drop_rate, attn_drop=attn_drop_rate, use_original_code=use_original_code,
            num_landmarks=num_landmarks, chunk_size=chunk_size, backend=attention_backend,
        )  # fmt: skip
        rates = [
            drop_path_rate * i / max(depth - 1, 1) for i in range(depth)
        ]  # stochastic depth rises linearly
        self.blocks = nn.ModuleList([self._make_block(drop_path=rate, **block_args) for rate in rates])
        self.norm = LayerNorm(embed_dim)
        if head_act is None:
            self.pre_logits = nn.Identity()
        else:
            self.pre_logits = nn.Sequential(
                OrderedDict(fc=nn.Linear(embed_dim, embed_dim), act=HEAD_ACTIVATIONS[head_act]())
            )
        self.head_drop = nn.Dropout(head_drop_rate)
        self.head = self.make_classifier(self.num_classes)

        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        self.set_grad_checkpointing(activation_checkpointing)

    @staticmethod
    def _make_block(
        attn_type: str,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
        use_original_code: bool,
        num_landmarks: int,
        chunk_size: int | None,
        backend: str | None,
    ) -> nn.Module:
        if attn_type == "divided":
            return DividedSpaceTimeBlock(
                dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_path, backend
            )
        if attn_type == "joint":
            attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop, backend=backend)
        else:
            attn = TrajectoryAttention(
                dim, num_heads, qkv_bias, attn_drop, drop, use_original_code=use_original_code,
                approx="orthoformer" if attn_type == "orthoformer" else "none", num_landmarks=num_landmarks,
                chunk_size=chunk_size, backend=backend,
            )  # fmt: skip
        return Block(dim, attn, mlp_ratio, drop, drop_path)

    def make_classifier(self, num_classes: int | tuple[int, ...]) -> nn.Module:
        if isinstance(num_classes, int):
            return nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        return nn.ModuleList([nn.Linear(self.embed_dim, n) for n in num_classes])

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"cls_token", "pos_embed", "temp_embed"}

    def reset_classifier(self, num_classes: int | Sequence[int]) -> None:
        super().reset_classifier(num_classes if isinstance(num_classes, int) else tuple(num_classes))

    def positional_embedding(self, frames: int, height: int, width: int) -> Tensor:
        """(1, 1 + frames·height·width, C): CLS position, then spatial tiled over frames + temporal."""
        spatial = resize_spatial_pos_embed(self.pos_embed, (height, width))[:, 1:]  # (1, P, C)
        temporal = resize_temporal_embed(self.temp_embed, frames)  # (1, F, C)
        patches = spatial.repeat(1, frames, 1) + temporal.repeat_interleave(height * width, dim=1)
        return torch.cat([self.pos_embed[:, :1], patches], dim=1)

    def _embed(self, x: Tensor) -> tuple[Tensor, int]:
        """Video (B, C, T, H, W) -> tokens (B, 1 + F·P, C) with positions, and F."""
        if self.frame_difference:
            x = residual_frames(x, keep_length=True)  # (B, C, T, H, W)
        frames, height, width = self.patch_embed.grid_size(x.shape)
        x = self.patch_embed(x)  # (B, F·P, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + self.positional_embedding(frames, height, width)), frames

    def _block_kwargs(self, frames: int) -> dict[str, int]:
        return {} if self.attn_type == "joint" else {"num_frames": frames}

    def forward_features(self, x: Tensor) -> Tensor:
        """Video (B, C, T, H, W) -> normalised tokens (B, 1 + F·P, C), CLS first."""
        x, frames = self._embed(x)
        kwargs = self._block_kwargs(frames)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False, **kwargs)
            else:
                x = block(x, **kwargs)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor | tuple[Tensor, ...]:
        """Tokens -> logits (a tuple for several heads); ``pre_logits``: the (B, C) input of the head."""
        x = self.pre_logits(x[:, 0])
        if pre_logits:
            return x
        x = self.head_drop(x)
        if isinstance(self.head, nn.ModuleList):
            return tuple(head(x) for head in self.head)
        return self.head(x)

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """One map per block for video x: trajectory/orthoformer (B, h, S, F) temporal attention of each
        patch query over frames; joint (B, h, N, N); divided (B, P, h, F, 1 + F) temporal attention."""
        x, frames = self._embed(x)
        kwargs = self._block_kwargs(frames)
        maps = []
        for block in self.blocks:
            x, attn_map = block(x, return_attention=True, **kwargs)
            maps.append(attn_map)
        return maps


def _create(defaults: dict, overrides: dict) -> VideoTransformer:
    return VideoTransformer(**{**defaults, **overrides})


_BASE = dict(embed_dim=768, depth=12, num_heads=12, patch_size=16, tubelet_size=2, num_classes=400)
_TINY = dict(
    embed_dim=96, depth=4, num_heads=3, patch_size=8, tubelet_size=2, img_size=64, num_frames=8,
    num_classes=10, drop_path_rate=0.1,
)  # fmt: skip


@register_model
def motionformer_b16_224(**kwargs) -> VideoTransformer:
    """Motionformer ViT-B/16, trajectory attention, 16 frames at 224 px (F=8, P=196)."""
    return _create({**_BASE, "img_size": 224, "num_frames": 16, "attn_type": "trajectory"}, kwargs)


@register_model
def motionformer_hr_336(**kwargs) -> VideoTransformer:
    """Motionformer-HR: 16 frames at 336 px (F=8, P=441); 14×14 stored spatial table, resized on the fly."""
    return _create(
        {**_BASE, "img_size": 336, "num_frames": 16, "attn_type": "trajectory", "pos_embed_grid": 14}, kwargs
    )


@register_model
def motionformer_l_224(**kwargs) -> VideoTransformer:
    """Motionformer-L: 32 frames at 224 px (F=16, P=196)."""
    return _create({**_BASE, "img_size": 224, "num_frames": 32, "attn_type": "trajectory"}, kwargs)


@register_model
def orthoformer_b16_224(**kwargs) -> VideoTransformer:
    """Motionformer with the Orthoformer approximation (128 landmarks), 16 frames at 224 px."""
    return _create({**_BASE, "img_size": 224, "num_frames": 16, "attn_type": "orthoformer"}, kwargs)


@register_model
def joint_b16_224(**kwargs) -> VideoTransformer:
    """Joint space-time attention ViT-B/16 baseline, 16 frames at 224 px."""
    return _create({**_BASE, "img_size": 224, "num_frames": 16, "attn_type": "joint"}, kwargs)


@register_model
def divided_b16_224(**kwargs) -> VideoTransformer:
    """Divided space-time attention (TimeSformer) ViT-B/16 baseline, 16 frames at 224 px."""
    return _create({**_BASE, "img_size": 224, "num_frames": 16, "attn_type": "divided"}, kwargs)


@register_model
def motionformer_tiny(**kwargs) -> VideoTransformer:
    """Tiny trajectory-attention model (96 wide, 4 blocks, 2×8×8 tubelets, 8 frames at 64 px)."""
    return _create({**_TINY, "attn_type": "trajectory"}, kwargs)


@register_model
def orthoformer_tiny(**kwargs) -> VideoTransformer:
    """Tiny Orthoformer model (as motionformer_tiny, 32 landmarks)."""
    return _create({**_TINY, "attn_type": "orthoformer", "num_landmarks": 32}, kwargs)


@register_model
def joint_tiny(**kwargs) -> VideoTransformer:
    """Tiny joint space-time attention model (as motionformer_tiny)."""
    return _create({**_TINY, "attn_type": "joint"}, kwargs)


@register_model
def divided_tiny(**kwargs) -> VideoTransformer:
    """Tiny divided space-time attention model (as motionformer_tiny)."""
    return _create({**_TINY, "attn_type": "divided"}, kwargs)
