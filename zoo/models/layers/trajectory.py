"""Trajectory attention (Patrick et al., "Keeping Your Eye on the Ball", NeurIPS 2021) and Orthoformer.

Notation: B batch, h heads, d head dim, C = h·d, F frames, P patches per frame, S = F·P patch tokens,
plus an optional CLS token first. For a query at (frame t, patch p):

1. spatial step, per target frame f (eq. 5): ``x̃[q, f] = Σ_n softmax_n(q·k[f, n] / sqrt(d)) v[f, n]``
   — the query's trajectory token in frame f;
2. temporal step (eq. 6-7): ``q2 = W_q x̃[q, t]`` (own frame), ``k2, v2 = W_kv x̃[q, :]``,
   ``y[q] = Σ_f softmax_f(q2·k2[f] / sqrt(d)) · v2[f]``.

The released Motionformer weights were trained with ``v2 = x̃`` (un-projected trajectory tokens, the
original code's "typo"); ``use_original_code=True`` reproduces that, ``False`` uses the projected values.
The CLS token attends to all tokens with plain attention.

Three implementations of step 1:

- :func:`trajectory_attention_reference`: the original's form, holding the (S, S) similarity per head;
- :func:`trajectory_attention`: exact and memory-efficient. Step 1 for a query is an ordinary attention
  over each frame's P keys, so it runs as one :func:`~zoo.models.layers.attention.attention` call per
  frame (SDPA kernels never form the matrix), over chunks of queries (with the explicit "math" backend a
  chunk holds a (chunk, P) block per frame, never (S, S)). Step 2 is per query, so each chunk finishes
  before the next starts. Peak memory is linear in S for a fixed chunk;
- :func:`orthoformer_attention`: the Orthoformer approximation (M landmark queries, linear in S).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from zoo.models.layers.attention import attention

APPROXIMATIONS = ("none", "orthoformer")


def _split_cls(t: Tensor, has_cls: bool) -> tuple[Tensor | None, Tensor]:
    return (t[:, :, :1], t[:, :, 1:]) if has_cls else (None, t)


def _check_frames(num_patch_tokens: int, num_frames: int) -> int:
    if num_frames <= 0 or num_patch_tokens % num_frames:
        raise ValueError(f"{num_patch_tokens} patch tokens cannot be split into {num_frames} frames")
    return num_patch_tokens // num_frames


def trajectory_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    num_frames: int,
    proj_q: nn.Module,
    proj_kv: nn.Module,
    *,
    has_cls: bool = True,
    use_original_code: bool = True,
    attn_drop: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Trajectory attention as the original computes it, with the full (B, h, S, S) similarity.

    q, k, v: (B, h, N, d) with N = [1 +] S. Returns the heads-merged output before the output
    projection, (B, N, C), and the temporal attention (B, h, S, F).
    """
    h, d = q.shape[1], q.shape[3]
    scale = d**-0.5
    cls_q, q_ = _split_cls(q, has_cls)
    _, k_ = _split_cls(k, has_cls)
    _, v_ = _split_cls(v, has_cls)
    _check_frames(q_.shape[2], num_frames)

    # spatial step: softmax over the P patches of each target frame f
    sim = rearrange(
        scale * q_ @ k_.transpose(-2, -1), "b h s (f n) -> b h s f n", f=num_frames
    )  # (B,h,S,F,P)
    space_attn = sim.softmax(dim=-1)
    if attn_drop is not None:
        space_attn = attn_drop(space_attn)
    v_frames = rearrange(v_, "b h (f n) d -> b h f n d", f=num_frames)
    x = torch.einsum("b h s f n, b h f n d -> b h s f d", space_attn, v_frames)
    x = rearrange(x, "b h s f d -> b s f (h d)")  # (B, S, F, C)

    # the query's own frame: diagonal over (query frame g, target frame f)
    x_diag = torch.diagonal(
        rearrange(x, "b (g n) f c -> b g n f c", g=num_frames), dim1=1, dim2=3
    )  # (B,P,C,F)
    x_diag = rearrange(x_diag, "b n c f -> b (f n) c")

    # temporal step: softmax over F
    q2 = rearrange(proj_q(x_diag), "b s (h d) -> b h s d", h=h) * scale
    k2, v2 = proj_kv(x).chunk(2, dim=-1)
    k2 = rearrange(k2, "b s f (h d) -> b h s f d", h=h)
    temporal_attn = torch.einsum("b h s d, b h s f d -> b h s f", q2, k2).softmax(dim=-1)
    values = x if use_original_code else v2
    values = rearrange(values, "b s f (h d) -> b h s f d", h=h)
    out = rearrange(
        torch.einsum("b h s f, b h s f d -> b h s d", temporal_attn, values), "b h s d -> b s (h d)"
    )

    if cls_q is not None:
        cls_attn = (scale * cls_q @ k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.cat([rearrange(cls_attn @ v, "b h 1 d -> b 1 (h d)"), out], dim=1)
    return out, temporal_attn


def _cls_row(cls_q: Tensor, k: Tensor, v: Tensor, backend: str | None) -> Tensor:
    """The CLS query attends to every token: (B, h, 1, d) -> (B, 1, C)."""
    return rearrange(attention(cls_q, k, v, backend=backend), "b h 1 d -> b 1 (h d)")


def _spatial_step(
    q_chunk: Tensor, k_: Tensor, v_: Tensor, num_frames: int, dropout_p: float, backend: str | None
) -> Tensor:
    """Eq. 5 for a chunk of queries: one attention call per target frame over that frame's P keys.

    q_chunk (B, h, c, d), patch k_ and v_ (B, h, S, d) -> trajectory tokens (B, c, F, C). SDPA returns its
    output in the query's memory layout, which for q from the fused ``qkv`` projection is (B, c, h, d), so
    merging the heads is free.
    """
    P = k_.shape[2] // num_frames
    frames = [
        attention(q_chunk, k_[:, :, f * P : (f + 1) * P], v_[:, :, f * P : (f + 1) * P], dropout_p=dropout_p,
                  backend=backend).transpose(1, 2).flatten(2)
        for f in range(num_frames)
    ]  # fmt: skip
    return torch.stack(frames, dim=2)


def _temporal_step(
    x_tilde: Tensor,
    own_frame: Tensor,
    proj_q: nn.Module,
    proj_kv: nn.Linear,
    num_heads: int,
    use_original_code: bool,
) -> tuple[Tensor, Tensor]:
    """Eq. 6-7 for a set of queries. x_tilde (B, c, F, C), own_frame (c,) -> (B, c, C), attn (B, h, c, F).

    Products and sums over d and F instead of batched matmuls, so no permuted copy of the (B, c, F, C)
    keys or values is made (or kept for the backward pass).
    """
    B, c, num_frames, C = x_tilde.shape
    h, d = num_heads, C // num_heads
    x_own = x_tilde[:, torch.arange(c, device=x_tilde.device), own_frame]  # (B, c, C)
    q2 = proj_q(x_own).view(B, c, 1, h, d) * d**-0.5
    if use_original_code:  # values are the trajectory tokens; only the key half of proj_kv is used
        bias = proj_kv.bias[:C] if proj_kv.bias is not None else None
        k2, values = F.linear(x_tilde, proj_kv.weight[:C], bias), x_tilde
    else:
        k2, values = proj_kv(x_tilde).chunk(2, dim=-1)
    k2, values = k2.view(B, c, num_frames, h, d), values.view(B, c, num_frames, h, d)
    attn = (q2 * k2).sum(-1).softmax(dim=2)  # (B, c, F, h): softmax over F
    out = (attn.unsqueeze(-1) * values).sum(2)  # (B, c, h, d)
    return out.reshape(B, c, C), attn.permute(0, 3, 1, 2)


def _own_frames(start: int, stop: int, patches_per_frame: int, device: torch.device) -> Tensor:
    return torch.arange(start, stop, device=device) // patches_per_frame


def trajectory_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    num_frames: int,
    proj_q: nn.Module,
    proj_kv: nn.Linear,
    *,
    has_cls: bool = True,
    use_original_code: bool = True,
    dropout_p: float = 0.0,
    chunk_size: int | None = 1024,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact trajectory attention without the (S, S) matrix; same contract as the reference.

    Queries are processed ``chunk_size`` at a time (None: all at once); each chunk runs the spatial step
    (one attention call per frame) and then the temporal step, which is per query.
    """
    cls_q, q_ = _split_cls(q, has_cls)
    _, k_ = _split_cls(k, has_cls)
    _, v_ = _split_cls(v, has_cls)
    S = q_.shape[2]
    P = _check_frames(S, num_frames)
    step = chunk_size or S
    outs, maps = [], []
    for start in range(0, S, step):
        q_chunk = q_[:, :, start : start + step]  # (B, h, c, d)
        x_tilde = _spatial_step(q_chunk, k_, v_, num_frames, dropout_p, backend)  # (B, c, F, C)
        own = _own_frames(start, start + q_chunk.shape[2], P, q.device)
        out, attn = _temporal_step(x_tilde, own, proj_q, proj_kv, q.shape[1], use_original_code)
        outs.append(out)
        maps.append(attn)
    out, temporal_attn = torch.cat(outs, dim=1), torch.cat(maps, dim=2)
    if cls_q is not None:
        out = torch.cat([_cls_row(cls_q, k, v, backend), out], dim=1)
    return out, temporal_attn


# --- Orthoformer ---------------------------------------------------------------------------------


@torch.no_grad()
def orthogonal_landmark_indices(q: Tensor, num_landmarks: int) -> Tensor:
    """Indices (B', M) of M near-orthogonal queries in q (B', N, d), sorted ascending.

    Greedy, as the original: L2-normalise the queries, take a first landmark uniformly at random
    (``torch.randint(N, (B', 1, 1))``, so a fixed seed gives the original's choice), then repeatedly add
    the query whose largest |cos| to the landmarks chosen so far is smallest. Ties go to the lowest index.
    """
    Bp, N, _ = q.shape
    if not 0 < num_landmarks <= N:
        raise ValueError(f"num_landmarks must be in [1, {N}] (the number of queries), got {num_landmarks}")
    unit = F.normalize(q, p=2, dim=-1)
    rows = torch.arange(Bp, device=q.device)
    newest = torch.randint(N, (Bp, 1, 1), device=q.device).view(Bp)
    selected = torch.zeros(Bp, N, dtype=torch.bool, device=q.device)
    selected[rows, newest] = True
    max_abs_cos = torch.zeros(Bp, N, dtype=q.dtype, device=q.device)
    for _ in range(num_landmarks - 1):
        cos = torch.einsum("b n d, b d -> b n", unit, unit[rows, newest]).abs()
        max_abs_cos = torch.maximum(max_abs_cos, cos)
        newest = max_abs_cos.masked_fill(selected, torch.inf).argmin(dim=-1)
        selected[rows, newest] = True
    return selected.nonzero()[:, 1].view(Bp, num_landmarks)


def orthoformer_trajectories(q: Tensor, k: Tensor, v: Tensor, num_frames: int, num_landmarks: int) -> Tensor:
    """Approximate trajectory tokens x̃ (B, h, S, F, d) from patch q, k, v (B, h, S, d) via M landmarks.

    q and k are scaled by d^-1/4 each; landmarks are the (scaled) queries at the chosen indices, held
    constant for the gradient as in the original. ``K1 = softmax_M(q Lᵀ)``, ``K2 = softmax_P(L kᵀ)`` per
    frame, ``x̃ = K1 (K2 v)``. At most S landmarks are used.
    """
    _, h, S, d = q.shape
    scale = d**-0.25
    q, k, v = (rearrange(t, "b h s d -> (b h) s d") for t in (q, k, v))
    q, k = q * scale, k * scale
    index = orthogonal_landmark_indices(q.detach(), min(num_landmarks, S))  # (B·h, M)
    landmarks = q.detach().gather(1, index.unsqueeze(-1).expand(-1, -1, d))  # (B·h, M, d)
    kernel_1 = (q @ landmarks.transpose(-1, -2)).softmax(dim=-1)  # (B·h, S, M)
    kernel_2 = rearrange(landmarks @ k.transpose(-1, -2), "b m (f p) -> b m f p", f=num_frames).softmax(
        dim=-1
    )
    x = torch.einsum(
        "b m f p, b f p d -> b m f d", kernel_2, rearrange(v, "b (f p) d -> b f p d", f=num_frames)
    )
    x = torch.einsum("b s m, b m f d -> b s f d", kernel_1, x)
    return rearrange(x, "(b h) s f d -> b h s f d", h=h)


def exact_trajectories(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    num_frames: int,
    chunk_size: int | None = 1024,
    backend: str | None = None,
) -> Tensor:
    """Exact trajectory tokens x̃ (B, h, S, F, d) from patch q, k, v (B, h, S, d) (eq. 5)."""
    S = q.shape[2]
    _check_frames(S, num_frames)
    step = chunk_size or S
    chunks = [_spatial_step(q[:, :, i : i + step], k, v, num_frames, 0.0, backend) for i in range(0, S, step)]
    return rearrange(torch.cat(chunks, dim=1), "b s f (h d) -> b h s f d", h=q.shape[1])


def orthoformer_error(q: Tensor, k: Tensor, v: Tensor, num_frames: int, num_landmarks: int = 128) -> float:
    """Relative Frobenius error ``‖x̃_ortho − x̃‖ / ‖x̃‖`` of the Orthoformer trajectory tokens."""
    exact = exact_trajectories(q, k, v, num_frames)
    approx = orthoformer_trajectories(q, k, v, num_frames, num_landmarks)
    return ((approx - exact).norm() / exact.norm()).item()


def orthoformer_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    num_frames: int,
    proj_q: nn.Module,
    proj_kv: nn.Linear,
    *,
    has_cls: bool = True,
    use_original_code: bool = True,
    num_landmarks: int = 128,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Trajectory attention with the Orthoformer spatial step; same contract as the reference."""
    cls_q, q_ = _split_cls(q, has_cls)
    _, k_ = _split_cls(k, has_cls)
    _, v_ = _split_cls(v, has_cls)
    S = q_.shape[2]
    P = _check_frames(S, num_frames)
    x_tilde = rearrange(
        orthoformer_trajectories(q_, k_, v_, num_frames, num_landmarks), "b h s f d -> b s f (h d)"
    )
    out, temporal_attn = _temporal_step(
        x_tilde, _own_frames(0, S, P, q.device), proj_q, proj_kv, q.shape[1], use_original_code
    )
    if cls_q is not None:
        out = torch.cat([_cls_row(cls_q, k, v, backend), out], dim=1)
    return out, temporal_attn


class TrajectoryAttention(nn.Module):
    """Trajectory attention layer (Motionformer): ``qkv``, ``proj_q``, ``proj_kv``, ``proj``.

    Args:
        use_original_code: temporal values are the un-projected trajectory tokens (how the released
            weights were trained); False uses the ``v`` half of ``proj_kv`` (for new training).
        approx: "none" (exact) or "orthoformer" (``num_landmarks`` landmarks).
        chunk_size: queries per chunk of the exact form (None: all at once).
        naive: use the reference form holding the (S, S) matrix (baseline for benchmarks).
        backend: attention backend (see :mod:`zoo.models.layers.attention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        use_original_code: bool = True,
        approx: str = "none",
        num_landmarks: int = 128,
        chunk_size: int | None = 1024,
        naive: bool = False,
        backend: str | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if approx not in APPROXIMATIONS:
            raise ValueError(f"approx must be one of {APPROXIMATIONS}, got {approx!r}")
        self.num_heads = num_heads
        self.use_original_code = use_original_code
        self.approx = approx
        self.num_landmarks = num_landmarks
        self.chunk_size = chunk_size
        self.naive = naive
        self.backend = backend
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: Tensor, num_frames: int, has_cls: bool = True, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, [1 +] F·P, C) -> (B, N, C); with ``return_attention`` also the temporal map (B, h, S, F)."""
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        common = dict(has_cls=has_cls, use_original_code=self.use_original_code)
        if self.approx == "orthoformer":
            out, attn = orthoformer_attention(
                q, k, v, num_frames, self.proj_q, self.proj_kv, num_landmarks=self.num_landmarks,
                backend=self.backend, **common,
            )  # fmt: skip
        elif self.naive:
            out, attn = trajectory_attention_reference(
                q, k, v, num_frames, self.proj_q, self.proj_kv, attn_drop=self.attn_drop, **common
            )
        else:
            dropout_p = self.attn_drop.p if self.training else 0.0
            out, attn = trajectory_attention(
                q, k, v, num_frames, self.proj_q, self.proj_kv, dropout_p=dropout_p,
                chunk_size=self.chunk_size, backend=self.backend, **common,
            )  # fmt: skip
        out = self.proj_drop(self.proj(out))
        return (out, attn) if return_attention else out
