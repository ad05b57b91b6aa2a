"""CMD's network parts: the modified last stage of a video ResNet and the motion-prediction transformer.

Self-supervised Video Representation Learning by Context and Motion Decoupling (Huang et al., CVPR 2021),
https://arxiv.org/abs/2104.00862.

* :func:`context_motion_features` — the video backbone with CMD's modified last stage: the output of
  ``layer3`` (B, C, T, H, W) is split into its even and odd frames, which are stacked on the channels
  (B, 2C, T/2, H, W); ``layer4`` runs on the unsplit map, is upsampled (nearest) to (T/2, H, W) and added.
  For R(2+1)D-26 on 16x112x112 clips: layer3 (B, 1024, 4, 7, 7) → F (B, 2048, 2, 7, 7), 98 positions
  that keep layer3's spatial detail for the pointwise motion prediction.
* :class:`MotionPredictor` — a DETR-style encoder–decoder: F's positions, projected to ``hidden_dim``
  without bias, are the memory (learned position embeddings added to queries and keys of every
  attention); the decoder starts from zeros and its learned queries, one per position of the
  motion-vector encoder's output (8 future frames at 112 px: 1x7x7 = 49), attend to themselves and to
  the memory. Post-norm layers whose feed-forward is ``hidden_dim → hidden_dim → hidden_dim``.
  Parameter names follow the released code (``self_attn``, ``cross_attn``, ``fc1``, ``fc2``, ``norm1-3``),
  so :mod:`zoo.convert.cmd` maps its files one for one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from zoo.models.base import run_stage
from zoo.models.layers.frames import residual_frames
from zoo.models.video_resnet import VideoResNet
from zoo.registry import register_model

__all__ = [
    "MotionDecoderLayer",
    "MotionEncoderLayer",
    "MotionPredictor",
    "context_motion_features",
    "r3d_tiny_cmd",
]


def context_motion_features(backbone: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CMD's modified last stage over a :class:`~zoo.models.video_resnet.VideoResNet`.

    Args:
        backbone: a video ResNet whose ``layer4`` has twice the channels of ``layer3`` (R(2+1)D-26,
            R3D-26 and any ResNet with doubling widths).
        x: clips (B, C, T, H, W).

    Returns:
        ``(fused, last)``: the fused map F (B, 2·C3, T3/2, H3, W3) and ``layer4``'s own output
        (B, C4, T3/2, H3/2, W3/2), whose pooling is the backbone's usual representation.
    """
    if getattr(backbone, "frame_difference", False):
        x = residual_frames(x)  # (B, C, T-1, H, W)
    checkpointing = getattr(backbone, "grad_checkpointing", False)
    x = backbone.stem(x)
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3):
        x = run_stage(stage, x, checkpointing)  # layer3: (B, C3, T3, H3, W3)
    if x.shape[2] % 2:
        raise ValueError(
            f"CMD's modified stage splits layer3's {x.shape[2]} time steps into even and odd ones: it needs "
            "an even number (clips of 8·k frames for R(2+1)D-26)"
        )
    split = rearrange(x, "b c (t two) h w -> b (two c) t h w", two=2)  # even frames' channels, then odd
    last = run_stage(backbone.layer4, x, checkpointing)  # (B, C4, T3/2, H3/2, W3/2)
    if last.shape[1] != split.shape[1]:
        raise ValueError(
            f"CMD's modified stage adds layer4 ({last.shape[1]} channels) to layer3 split in two "
            f"({split.shape[1]} channels): the backbone's last width must be twice the third"
        )
    fused = F.interpolate(last, size=split.shape[2:], mode="nearest") + split  # (B, 2·C3, T3/2, H3, W3)
    return fused, last


class MotionEncoderLayer(nn.Module):
    """Post-norm self-attention layer; the position embedding is added to queries and keys only.

    Args:
        hidden_dim: token width.
        num_heads: attention heads.
        dropout: dropout of the attention weights and of each residual branch.
    """

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(hidden_dim, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.fc1 = nn.Linear(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # x: (B, L, D), pos: (L, D)
        q = k = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, k, x, need_weights=False)[0]))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


class MotionDecoderLayer(MotionEncoderLayer):
    """Post-norm decoder layer: self-attention of the queries, cross-attention to the memory, feed-forward.

    Args:
        hidden_dim: token width.
        num_heads: attention heads.
        dropout: dropout of the attention weights and of each residual branch.
    """

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float = 0.1):
        super().__init__(hidden_dim, num_heads, dropout)
        self.cross_attn = nn.MultiheadAttention(hidden_dim, num_heads, dropout=dropout, batch_first=True)
        self.norm3 = nn.LayerNorm(hidden_dim)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor, memory_pos: torch.Tensor
    ) -> torch.Tensor:
        # x: (B, Q, D), memory: (B, L, D), query_pos: (Q, D), memory_pos: (L, D)
        q = k = x + query_pos
        x = self.norm1(x + self.dropout(self.self_attn(q, k, x, need_weights=False)[0]))
        attended = self.cross_attn(x + query_pos, memory + memory_pos, memory, need_weights=False)[0]
        x = self.norm2(x + self.dropout(attended))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


class MotionPredictor(nn.Module):
    """Predicts a feature per position of the near future's motion from the fused clip map F.

    Args:
        in_dim: channels of F (2048 for R(2+1)D-26).
        memory_len: positions of F (T·H·W; 98 for R(2+1)D-26 on 16x112x112 clips).
        query_len: predicted positions (those of the motion-vector encoder's output; 49 for 8 frames).
        hidden_dim: token width (512).
        num_heads: attention heads (8).
        encoder_layers: encoder depth (2).
        decoder_layers: decoder depth (4).
        dropout: dropout of attention weights and residual branches (0.1).
    """

    def __init__(
        self,
        in_dim: int,
        memory_len: int,
        query_len: int,
        hidden_dim: int = 512,
        num_heads: int = 8,
        encoder_layers: int = 2,
        decoder_layers: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.input_proj = nn.Linear(in_dim, hidden_dim, bias=False)
        self.memory_pos = nn.Embedding(memory_len, hidden_dim)
        self.query_pos = nn.Embedding(query_len, hidden_dim)
        self.encoder = nn.ModuleList(
            MotionEncoderLayer(hidden_dim, num_heads, dropout) for _ in range(encoder_layers)
        )
        self.decoder = nn.ModuleList(
            MotionDecoderLayer(hidden_dim, num_heads, dropout) for _ in range(decoder_layers)
        )
        # initialisation of the released code: xavier for the attention stack, then the rest
        for p in [*self.encoder.parameters(), *self.decoder.parameters()]:
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.input_proj.weight, std=0.01)
        nn.init.uniform_(self.memory_pos.weight)
        nn.init.uniform_(self.query_pos.weight)

    @property
    def memory_len(self) -> int:
        return self.memory_pos.num_embeddings

    @property
    def query_len(self) -> int:
        return self.query_pos.num_embeddings

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """Fused clip maps (B, C, T, H, W) → predictions (B, Q, hidden_dim), queries in (t, h, w) order."""
        memory = rearrange(fused, "b c t h w -> b (t h w) c")
        if memory.shape[1] != self.memory_len:
            raise ValueError(
                f"the motion predictor was built for {self.memory_len} positions of the clip map, got "
                f"{memory.shape[1]} ({tuple(fused.shape[2:])}): build it for this clip size and length"
            )
        memory = self.input_proj(memory)  # (B, L, D)
        memory_pos, query_pos = self.memory_pos.weight, self.query_pos.weight  # (L, D), (Q, D)
        for layer in self.encoder:
            memory = layer(memory, memory_pos)
        x = torch.zeros(
            fused.shape[0], self.query_len, memory.shape[-1], device=memory.device, dtype=memory.dtype
        )
        for layer in self.decoder:
            x = layer(x, memory, query_pos, memory_pos)
        return x  # (B, Q, D)


@register_model
def r3d_tiny_cmd(**kwargs) -> VideoResNet:
    """Tiny R3D for CMD on short CPU clips: widths 16-32-32-64 (layer4 twice layer3, as the modified stage
    needs) and no temporal stride in layer2, so 4-frame clips keep 2 time steps at layer3."""
    model = VideoResNet(**{"conv_type": "3d", "layers": (1, 1, 1, 1), "widths": (16, 32, 32, 64), **kwargs})
    first = model.layer2[0]
    for conv in (first.conv1[0], first.downsample[0]):
        conv.stride = (1, *conv.stride[1:])
    return model
