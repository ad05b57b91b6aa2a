"""Multiple-choice video QA heads: locally aligned attention and a two-stream answer scorer.

Kim et al., "Self-supervised Pre-training and Contrastive Representation Learning for Multiple-choice Video
QA" (AAAI 2021). The paper says that each subtitle sentence attends only to the frames relevant to it and
that answers are scored from both the text and the video streams; how is not given in the parts that could
be read, so the forms below are zoo's (see :class:`zoo.methods.videoqa.VideoQA`).

- :func:`local_alignment_mask`: frame ``t`` is visible to sentence ``s`` iff its time lies in the sentence's
  ``[start - window, end + window]``.
- :class:`LocallyAlignedAttention`: each sentence (query) attends to the frames (keys, values) under that
  mask; a sentence without any frame in its span gets no visual context (zeros), never a uniform average.
- :class:`TwoStreamQAScorer`: a candidate (question + answer) attends to the frames (video stream) and to the
  visually grounded sentences (text stream); each stream gives a score and a fused vector, the scores add up.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

__all__ = ["LocallyAlignedAttention", "TwoStreamQAScorer", "local_alignment_mask", "sinusoidal_positions"]


def local_alignment_mask(spans: torch.Tensor, frame_times: torch.Tensor, window: float = 0.0) -> torch.Tensor:
    """Which frames each sentence may attend to: (B, S, T) bool, True where frame t lies in sentence s's
    widened span.

    Args:
        spans: (B, S, 2) start and end time of every sentence, seconds.
        frame_times: (B, T) time of every frame, seconds.
        window: slack added on both sides of a span, seconds.
    """
    start = spans[..., 0, None] - window  # (B, S, 1)
    end = spans[..., 1, None] + window
    times = frame_times[:, None, :]  # (B, 1, T)
    return (times >= start) & (times <= end)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Sinusoidal embeddings (length, dim) of positions 0 … length - 1 (Vaswani et al. 2017, §3.5): sines in
    the first half, cosines in the second, wavelengths from 2π to 10000·2π.

    Args:
        length: number of positions.
        dim: embedding width (even).
    """
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(dim // 2) / (dim // 2))  # (dim / 2,)
    angles = torch.arange(length)[:, None] * frequencies[None, :]  # (length, dim / 2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _MaskedCrossAttention(nn.Module):
    """Multi-head attention from queries to keys under a (B, Q, K) visibility mask; rows with nothing
    visible give zeros."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        # queries (B, Q, D), keys (B, K, D), visible (B, Q, K) bool
        heads = self.attention.num_heads
        anything = visible.any(dim=-1, keepdim=True)  # (B, Q, 1)
        blocked = ~(visible | ~anything)  # an empty row sees everything, then is zeroed (no NaN)
        blocked = rearrange(blocked[:, None].expand(-1, heads, -1, -1), "b h q k -> (b h) q k")
        context, _ = self.attention(queries, keys, keys, attn_mask=blocked, need_weights=False)
        return context * anything  # (B, Q, D)


class LocallyAlignedAttention(nn.Module):
    """Sentences attend to the frames inside their own time span (residual, then layer norm).

    Args:
        dim: width of sentences and frames.
        num_heads: attention heads.
    """

    def __init__(self, dim: int, num_heads: int = 4):
        super().__init__()
        self.cross = _MaskedCrossAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, sentences: torch.Tensor, frames: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Visually grounded sentences (B, S, D).

        Args:
            sentences: (B, S, D) sentence embeddings.
            frames: (B, T, D) frame features.
            visible: (B, S, T) bool, :func:`local_alignment_mask`.
        """
        return self.norm(sentences + self.cross(sentences, frames, visible))


class _Stream(nn.Module):
    """One stream: a candidate attends to a context sequence; fused [q, c, q ⊙ c] → vector → score."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.cross = _MaskedCrossAttention(dim, num_heads)
        self.fuse = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Dropout(dropout))
        self.score = nn.Linear(dim, 1)

    def forward(
        self, candidates: torch.Tensor, context: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # candidates (B, A, D), context (B, N, D), valid (B, N) bool
        visible = valid[:, None, :].expand(-1, candidates.shape[1], -1)  # (B, A, N)
        attended = self.cross(candidates, context, visible)  # (B, A, D)
        fused = self.fuse(torch.cat([candidates, attended, candidates * attended], dim=-1))  # (B, A, D)
        return self.score(fused).squeeze(-1), fused  # (B, A), (B, A, D)


class TwoStreamQAScorer(nn.Module):
    """Scores of A candidates against a clip's frames and (optionally) its time-stamped sentences.

    Args:
        text_dim: width of the candidate and sentence embeddings (the text encoder's).
        video_dim: width of the frame features (the frame encoder's).
        dim: common width of both streams.
        num_heads: attention heads.
        dropout: dropout in the fusion layers.
        candidate_dim: width of the candidate embeddings (default: ``text_dim``).
        frame_positions: add a sinusoidal embedding of each frame's index to the projected frames
            (Vaswani et al. 2017, §3.5), so that the attention reads their order; without it the frames
            are a set.
    """

    def __init__(
        self,
        text_dim: int,
        video_dim: int,
        dim: int = 128,
        num_heads: int = 4,
        dropout: float = 0.1,
        candidate_dim: int | None = None,
        frame_positions: bool = False,
    ):
        super().__init__()
        self.candidate_proj = nn.Linear(candidate_dim or text_dim, dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.video_proj = nn.Sequential(nn.Linear(video_dim, dim), nn.LayerNorm(dim))
        self.local = LocallyAlignedAttention(dim, num_heads)
        self.video_stream = _Stream(dim, num_heads, dropout)
        self.text_stream = _Stream(dim, num_heads, dropout)
        self.dim = dim
        self.frame_positions = frame_positions

    def forward(
        self,
        candidates: torch.Tensor,
        frames: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        sentences: torch.Tensor | None = None,
        sentence_visible: torch.Tensor | None = None,
        sentence_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, A) (video stream + text stream) and the fused candidate vectors (B, A, 2·dim or dim).

        Args:
            candidates: (B, A, candidate_dim) pooled question + answer embeddings.
            frames: (B, T, video_dim) frame features.
            frame_mask: (B, T) bool, valid frames; all by default.
            sentences: (B, S, text_dim) subtitle / object-label sentence embeddings, or None (video only).
            sentence_visible: (B, S, T) bool, :func:`local_alignment_mask` of the sentences.
            sentence_mask: (B, S) bool, valid sentences; all by default.
        """
        queries = self.candidate_proj(candidates)  # (B, A, D)
        frames = self.video_proj(frames)  # (B, T, D)
        if self.frame_positions:
            frames = frames + sinusoidal_positions(frames.shape[1], self.dim).to(frames)  # (B, T, D)
        if frame_mask is None:
            frame_mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        scores, fused = self.video_stream(queries, frames, frame_mask)
        if sentences is None:
            return scores, fused
        if sentence_visible is None:
            raise ValueError("sentences need sentence_visible, their (B, S, T) local alignment mask")
        if sentence_mask is None:
            sentence_mask = torch.ones(sentences.shape[:2], dtype=torch.bool, device=sentences.device)
        grounded = self.local(self.text_proj(sentences), frames, sentence_visible & frame_mask[:, None, :])
        text_scores, text_fused = self.text_stream(queries, grounded, sentence_mask)  # (B, A), (B, A, D)
        return scores + text_scores, torch.cat([fused, text_fused], dim=-1)
