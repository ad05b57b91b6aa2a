"""The attention dispatch (SDPA / xformers / math), the MHSA module and the shared ViT blocks."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from zoo.models.layers import attention as attention_mod
from zoo.models.layers.attention import Attention, attention, resolve_backend
from zoo.models.layers.blocks import Block, DropPath, Mlp, PatchEmbed3D


def qkv(b=2, h=3, nq=7, nk=11, d=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=g, dtype=dtype) for n in (nq, nk, nk))


def explicit(q, k, v, mask=None):
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return torch.einsum("bhij,bhjd->bhid", scores.softmax(-1), v)


@pytest.mark.parity
@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_backends_match_explicit_softmax(backend):
    q, k, v = qkv()
    torch.testing.assert_close(attention(q, k, v, backend=backend), explicit(q, k, v), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_masks_bool_and_additive(backend):
    q, k, v = qkv()
    keep = torch.rand(1, 1, 7, 11, generator=torch.Generator().manual_seed(1)) > 0.3
    keep[..., 0] = True  # every row keeps a key
    bias = torch.randn(2, 3, 7, 11)
    torch.testing.assert_close(attention(q, k, v, attn_mask=keep, backend=backend), explicit(q, k, v, keep))
    torch.testing.assert_close(attention(q, k, v, attn_mask=bias, backend=backend), explicit(q, k, v, bias))


def test_environment_variable_selects_backend(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention
    monkeypatch.setattr(
        attention_mod.F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    q, k, v = qkv()
    monkeypatch.setenv("ZOO_ATTENTION", "math")
    attention(q, k, v)
    assert calls == [] and resolve_backend() == "math"
    attention(q, k, v, backend="sdpa")  # the argument wins over the environment
    assert calls == [1]
    monkeypatch.delenv("ZOO_ATTENTION")
    attention(q, k, v)
    assert calls == [1, 1] and resolve_backend() == "sdpa"


def test_unknown_backend_is_an_error(monkeypatch):
    q, k, v = qkv()
    with pytest.raises(ValueError, match="flash3"):
        attention(q, k, v, backend="flash3")
    monkeypatch.setenv("ZOO_ATTENTION", "bogus")
    with pytest.raises(ValueError, match="ZOO_ATTENTION"):
        attention(q, k, v)


def test_xformers_needs_cuda_and_the_package():
    q, k, v = qkv()
    with pytest.raises(RuntimeError, match=r"xformers|CUDA"):
        attention(q, k, v, backend="xformers")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(importlib.util.find_spec("xformers") is None, reason="needs xformers")
def test_xformers_matches_math_on_cuda():
    q, k, v = (t.cuda() for t in qkv(d=64))
    torch.testing.assert_close(
        attention(q, k, v, backend="xformers"), attention(q, k, v, backend="math"), atol=1e-4, rtol=1e-3
    )


def test_dropout_only_changes_training_outputs():
    q, k, v = qkv()
    torch.manual_seed(0)
    dropped = attention(q, k, v, dropout_p=0.5, backend="math")
    assert not torch.allclose(dropped, attention(q, k, v, backend="math"))


def test_attention_module_matches_manual_mhsa_and_returns_maps():
    torch.manual_seed(0)
    layer = Attention(24, num_heads=3).eval()
    x = torch.randn(2, 5, 24)
    q, k, v = layer.qkv(x).reshape(2, 5, 3, 3, 8).permute(2, 0, 3, 1, 4)
    manual = layer.proj(explicit(q, k, v).transpose(1, 2).reshape(2, 5, 24))
    torch.testing.assert_close(layer(x), manual, atol=1e-6, rtol=1e-5)
    out, maps = layer(x, return_attention=True)
    torch.testing.assert_close(out, manual, atol=1e-6, rtol=1e-5)
    assert maps.shape == (2, 3, 5, 5)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 5))
    assert set(dict(layer.named_parameters())) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}


def test_attention_module_backends_agree():
    torch.manual_seed(0)
    layer = Attention(16, num_heads=2).eval()
    x = torch.randn(1, 9, 16)
    layer.backend = "math"
    ref = layer(x)
    layer.backend = "sdpa"
    torch.testing.assert_close(layer(x), ref, atol=1e-6, rtol=1e-5)


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    layer = DropPath(0.5)
    x = torch.ones(64, 3, 4)
    out = layer(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert torch.equal(layer.eval()(x), x)


def test_block_is_pre_norm_residual():
    torch.manual_seed(0)
    block = Block(16, Attention(16, 2)).eval()
    x = torch.randn(2, 5, 16)
    y = x + block.attn(block.norm1(x))
    torch.testing.assert_close(block(x), y + block.mlp(block.norm2(y)))
    assert block.norm1.eps == 1e-6
    out, maps = block(x, return_attention=True)
    torch.testing.assert_close(out, block(x))
    assert maps.shape == (2, 2, 5, 5)


def test_mlp_parameter_names():
    assert set(dict(Mlp(8, 32).named_parameters())) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def test_patch_embed_3d_is_frame_major():
    torch.manual_seed(0)
    embed = PatchEmbed3D((2, 4, 4), in_chans=3, embed_dim=5)
    video = torch.randn(1, 3, 6, 8, 12)  # grid (3, 2, 3)
    tokens = embed(video)
    assert tokens.shape == (1, 18, 5) and embed.grid_size(video.shape) == (3, 2, 3)
    t, h, w = 2, 1, 2
    tube = video[:, :, 2 * t : 2 * t + 2, 4 * h : 4 * h + 4, 4 * w : 4 * w + 4]
    expected = (tube[:, None] * embed.proj.weight[None]).flatten(2).sum(-1) + embed.proj.bias
    torch.testing.assert_close(tokens[:, (t * 2 + h) * 3 + w], expected[0][None], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not divisible"):
        embed(torch.randn(1, 3, 5, 8, 12))
