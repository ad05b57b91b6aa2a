"""Trajectory attention: exact memory-efficient form vs the reference, both value paths, Orthoformer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from zoo.models.layers.trajectory import (
    TrajectoryAttention,
    orthoformer_error,
    orthoformer_trajectories,
    orthogonal_landmark_indices,
    trajectory_attention,
    trajectory_attention_reference,
)

B, H, D = 2, 3, 8
C = H * D


def make_inputs(frames=3, patches=10, has_cls=True, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n = frames * patches + int(has_cls)
    q, k, v = (torch.randn(B, H, n, D, generator=g, dtype=dtype) for _ in range(3))
    torch.manual_seed(seed)
    proj_q, proj_kv = nn.Linear(C, C).to(dtype), nn.Linear(C, 2 * C).to(dtype)
    return q, k, v, proj_q, proj_kv


@pytest.mark.parity
@pytest.mark.parametrize("use_original_code", [True, False])
@pytest.mark.parametrize("has_cls", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 7, 30, 64])
@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_exact_matches_reference(use_original_code, has_cls, chunk_size, backend):
    q, k, v, proj_q, proj_kv = make_inputs(has_cls=has_cls)
    kw = dict(has_cls=has_cls, use_original_code=use_original_code)
    ref, ref_attn = trajectory_attention_reference(q, k, v, 3, proj_q, proj_kv, **kw)
    out, attn = trajectory_attention(
        q, k, v, 3, proj_q, proj_kv, chunk_size=chunk_size, backend=backend, **kw
    )
    assert out.shape == (B, 30 + int(has_cls), C) and attn.shape == (B, H, 30, 3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn, ref_attn, atol=1e-5, rtol=0)
    torch.testing.assert_close(attn.sum(-1), torch.ones(B, H, 30))


@pytest.mark.parity
@pytest.mark.parametrize("use_original_code", [True, False])
def test_gradients_match_reference(use_original_code):
    q, k, v, proj_q, proj_kv = make_inputs()
    grads = []
    for fn in (trajectory_attention_reference, trajectory_attention):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        for p in (*proj_q.parameters(), *proj_kv.parameters()):
            p.grad = None
        kw = {"chunk_size": 8} if fn is trajectory_attention else {}
        out, _ = fn(*leaves, 3, proj_q, proj_kv, use_original_code=use_original_code, **kw)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append(
            [t.grad for t in leaves] + [p.grad.clone() for p in (*proj_q.parameters(), *proj_kv.parameters())]
        )
    for ref, ours in zip(*grads):
        assert ours.abs().sum() > 0 or ref.abs().sum() == 0
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_original_code_ignores_the_value_projection():
    q, k, v, proj_q, proj_kv = make_inputs()
    outputs = {}
    for original in (True, False):
        before, _ = trajectory_attention(q, k, v, 3, proj_q, proj_kv, use_original_code=original)
        with torch.no_grad():
            proj_kv.weight[C:] += 1.0  # perturb only the v half
        after, _ = trajectory_attention(q, k, v, 3, proj_q, proj_kv, use_original_code=original)
        with torch.no_grad():
            proj_kv.weight[C:] -= 1.0
        outputs[original] = (before, after)
    torch.testing.assert_close(outputs[True][0], outputs[True][1])
    assert not torch.allclose(outputs[False][0], outputs[False][1])
    assert not torch.allclose(outputs[True][0], outputs[False][0])


def test_cls_row_is_plain_attention_over_all_tokens():
    q, k, v, proj_q, proj_kv = make_inputs()
    out, _ = trajectory_attention(q, k, v, 3, proj_q, proj_kv)
    cls = ((q[:, :, :1] @ k.transpose(-1, -2)) / D**0.5).softmax(-1) @ v  # (B, H, 1, D)
    torch.testing.assert_close(out[:, :1], cls.permute(0, 2, 1, 3).reshape(B, 1, C), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("approx", ["none", "orthoformer"])
def test_module_shapes_parameters_and_maps(approx):
    torch.manual_seed(0)
    layer = TrajectoryAttention(C, H, approx=approx, num_landmarks=8, chunk_size=5).eval()
    assert set(dict(layer.named_parameters())) == {
        f"{m}.{p}" for m in ("qkv", "proj_q", "proj_kv", "proj") for p in ("weight", "bias")
    }
    assert layer.proj_kv.weight.shape == (2 * C, C)
    x = torch.randn(B, 1 + 4 * 9, C)
    out, maps = layer(x, num_frames=4, return_attention=True)
    assert out.shape == x.shape and maps.shape == (B, H, 36, 4)
    torch.testing.assert_close(maps.sum(-1), torch.ones(B, H, 36))
    out_no_cls = layer(x[:, 1:], num_frames=4, has_cls=False)
    assert out_no_cls.shape == (B, 36, C)


def test_module_naive_and_efficient_agree_and_train():
    torch.manual_seed(0)
    layer = TrajectoryAttention(C, H, chunk_size=11).eval()
    x = torch.randn(B, 1 + 3 * 8, C, requires_grad=True)
    out = layer(x, num_frames=3)
    layer.naive = True
    torch.testing.assert_close(out, layer(x, num_frames=3), atol=1e-5, rtol=0)
    layer.naive = False
    layer.train()
    layer.attn_drop.p = 0.2
    layer(x, num_frames=3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in layer.parameters())


def test_bad_frame_count_is_an_error():
    q, k, v, proj_q, proj_kv = make_inputs()
    with pytest.raises(ValueError, match="frames"):
        trajectory_attention(q, k, v, 4, proj_q, proj_kv)


# --- memory: the exact form never materialises an (S, S) block -----------------------------------


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor produced by an aten op."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def largest_intermediate(fn, frames, patches=16, **kw):
    q, k, v, proj_q, proj_kv = make_inputs(frames=frames, patches=patches)
    with torch.no_grad(), LargestTensor() as mode:
        fn(q, k, v, frames, proj_q, proj_kv, **kw)
    return mode.largest


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_exact_form_memory_is_linear_in_tokens(backend):
    kw = dict(chunk_size=16, backend=backend)
    s_large = 8 * 16
    naive_small = largest_intermediate(trajectory_attention_reference, 4)
    naive_large = largest_intermediate(trajectory_attention_reference, 8)
    ours_small = largest_intermediate(trajectory_attention, 4, **kw)
    ours_large = largest_intermediate(trajectory_attention, 8, **kw)
    assert naive_large >= B * H * s_large * s_large  # the detector sees the (S, S) matrix
    assert naive_large / naive_small == pytest.approx(4, rel=0.05)  # quadratic
    assert ours_large < B * H * s_large * s_large / 4
    assert ours_large / ours_small <= 2.05  # linear for a fixed chunk


def test_sdpa_without_chunks_holds_nothing_above_the_trajectory_tokens():
    frames, patches = 8, 32
    s = frames * patches
    largest = largest_intermediate(trajectory_attention, frames, patches, chunk_size=None, backend="sdpa")
    assert largest <= B * s * frames * C  # x̃ itself, (B, S, F, C): the spatial step's output
    assert largest < B * H * s * s / 2


# --- Orthoformer -----------------------------------------------------------------------------------


def original_landmark_selection(q: torch.Tensor, num_landmarks: int) -> torch.Tensor:
    """The original's algorithm, written independently: a (B, N, M) table of |cos| to each landmark,
    selected rows set to 10, argmin of the row maxima; the landmarks (q rows) come back in index order."""
    unit = F.normalize(q, p=2, dim=-1)
    b, n, _ = unit.shape
    chosen = torch.zeros(b, n, dtype=torch.bool)
    first = torch.randint(n, (b, 1, 1))
    chosen[torch.arange(b), first.view(-1)] = True
    table = torch.empty(b, n, num_landmarks)
    latest = unit[torch.arange(b), first.view(-1)]
    for m in range(1, num_landmarks):
        table[:, :, m - 1] = (unit * latest[:, None, :]).sum(-1).abs()
        scores = table[:, :, :m].clone()
        scores[chosen] = 10.0
        pick = scores.max(-1).values.argmin(-1)
        chosen[torch.arange(b), pick] = True
        latest = unit[torch.arange(b), pick]
    return torch.stack([q[i][chosen[i]] for i in range(b)])


@pytest.mark.parity
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_landmark_selection_matches_original_for_a_seed(seed):
    q = torch.randn(6, 40, D, generator=torch.Generator().manual_seed(100 + seed))
    torch.manual_seed(seed)
    expected = original_landmark_selection(q, 12)
    torch.manual_seed(seed)
    index = orthogonal_landmark_indices(q, 12)
    assert index.shape == (6, 12) and (index.diff(dim=-1) > 0).all()
    torch.testing.assert_close(q.gather(1, index[..., None].expand(-1, -1, D)), expected, atol=0, rtol=0)


@pytest.mark.parity
def test_orthoformer_matches_original_kernels():
    frames, patches, m = 3, 10, 6
    q, k, v, *_ = make_inputs(frames=frames, patches=patches, has_cls=False)
    torch.manual_seed(3)
    ours = orthoformer_trajectories(q, k, v, frames, m)  # (B, H, S, F, D)
    # the original: q, k scaled by d^-1/4; landmarks from the queries; two softmax kernels
    qs, ks, vs = (t.reshape(B * H, frames * patches, D) for t in (q, k, v))
    qs, ks = qs * D**-0.25, ks * D**-0.25
    torch.manual_seed(3)
    landmarks = original_landmark_selection(qs, m)
    kernel_1 = (qs @ landmarks.transpose(-1, -2)).softmax(-1)
    kernel_2 = (landmarks @ ks.transpose(-1, -2)).view(B * H, m, frames, patches).softmax(-1)
    x = torch.einsum("blfp,bfpd->blfd", kernel_2, vs.view(B * H, frames, patches, D))
    expected = torch.einsum("bnl,blfd->bnfd", kernel_1, x).view(B, H, frames * patches, frames, D)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_orthoformer_gradients_flow_but_not_through_landmarks():
    q, k, v, *_ = make_inputs(has_cls=False)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    torch.manual_seed(0)
    orthoformer_trajectories(q, k, v, 3, 8).sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


def test_orthoformer_error_is_the_relative_error_to_exact():
    q, k, v, *_ = make_inputs(has_cls=False)
    torch.manual_seed(0)
    err = orthoformer_error(q, k, v, 3, 8)
    assert 0.0 < err < 1.0
    torch.manual_seed(0)
    approx = orthoformer_trajectories(q, k, v, 3, 8)
    sim = (q @ k.transpose(-1, -2) / D**0.5).view(B, H, 30, 3, 10).softmax(-1)
    exact = torch.einsum("bhsfn,bhfnd->bhsfd", sim, v.view(B, H, 3, 10, D))
    assert err == pytest.approx(((approx - exact).norm() / exact.norm()).item(), rel=1e-4)


def test_too_many_landmarks_is_an_error():
    with pytest.raises(ValueError, match="num_landmarks"):
        orthogonal_landmark_indices(torch.randn(1, 5, 4), 6)
