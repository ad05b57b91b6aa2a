"""The Motionformer family: registered archs, embeddings, head API, checkpointing, attention maps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import registry
from zoo.models.motionformer import VideoTransformer, resize_spatial_pos_embed, resize_temporal_embed

TINY = ["motionformer_tiny", "orthoformer_tiny", "joint_tiny", "divided_tiny"]
FULL = [
    "motionformer_b16_224",
    "motionformer_hr_336",
    "motionformer_l_224",
    "orthoformer_b16_224",
    "joint_b16_224",
    "divided_b16_224",
]
SMALL = dict(embed_dim=24, depth=2, num_heads=2, num_classes=5)


def clip(frames=8, size=64, batch=2, seed=0):
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TINY)
def test_tiny_archs_give_logits(name):
    torch.manual_seed(0)
    model = registry.build(name).eval()
    with torch.no_grad():
        logits = model(clip())
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert not torch.allclose(logits.sum(-1), torch.ones(2))  # logits, not probabilities
    assert model.num_features == 96 and model.classifier_keys == ("head.",)


@pytest.mark.parametrize("name", FULL)
def test_full_archs_have_the_original_layout(name):
    model = registry.build(name, depth=1)  # one block keeps the test fast
    state = model.state_dict()
    assert state["pos_embed"].shape == (1, 197, 768)  # the HR model stores the 224-px table, too
    assert state["temp_embed"].shape == (1, 16 if name == "motionformer_l_224" else 8, 768)
    assert state["patch_embed.proj.weight"].shape == (768, 3, 2, 16, 16)
    assert state["head.weight"].shape == (400, 768) and state["pre_logits.fc.weight"].shape == (768, 768)
    block_keys = {k.split(".", 2)[2] for k in state if k.startswith("blocks.0.")}
    attn = {"attn.qkv.weight", "attn.proj.weight"}
    assert attn <= block_keys
    if "divided" in name:
        assert {"timeattn.qkv.weight", "norm3.weight"} <= block_keys
    elif "joint" not in name:
        assert {"attn.proj_q.weight", "attn.proj_kv.weight"} <= block_keys


def test_factories_accept_overrides():
    model = registry.build("motionformer_tiny", num_classes=3, img_size=32, num_frames=4, drop_path_rate=0.0)
    assert model.head.out_features == 3 and model.temp_embed.shape[1] == 2 and model.pos_embed.shape[1] == 17
    with pytest.raises(ValueError, match="attn_type"):
        VideoTransformer(attn_type="axial")


def test_backend_override_gives_the_same_model_output():
    torch.manual_seed(0)
    ref = registry.build("motionformer_tiny", attention_backend="math").eval()
    ours = registry.build("motionformer_tiny", attention_backend="sdpa").eval()
    ours.load_state_dict(ref.state_dict())
    x = clip(batch=1)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)


def test_several_heads_and_no_head():
    torch.manual_seed(0)
    model = registry.build("motionformer_tiny", num_classes=(4, 6)).eval()
    verbs, nouns = model(clip(batch=1))
    assert verbs.shape == (1, 4) and nouns.shape == (1, 6)
    assert {k for k in model.state_dict() if k.startswith("head.")} == {
        "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"
    }  # fmt: skip
    features = registry.build("motionformer_tiny", num_classes=0).eval()(clip(batch=1))
    assert features.shape == (1, 96)


def test_reset_classifier_replaces_only_the_head():
    torch.manual_seed(0)
    model = registry.build("joint_tiny").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_classifier(7)
    after = model.state_dict()
    assert after["head.weight"].shape == (7, 96)
    assert all(torch.equal(before[k], after[k]) for k in after if not k.startswith("head."))
    model.reset_classifier([2, 3])
    assert [h.out_features for h in model.head] == [2, 3]


def test_forward_head_pre_logits_is_tanh_mlp_of_cls():
    torch.manual_seed(0)
    model = registry.build("motionformer_tiny").eval()
    with torch.no_grad():
        tokens = model.forward_features(clip(batch=1))
        assert tokens.shape == (1, 1 + 4 * 64, 96)
        pre = model.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pre, torch.tanh(model.pre_logits.fc(tokens[:, 0])))
        torch.testing.assert_close(model.forward_head(tokens), model.head(pre))


@pytest.mark.parametrize("name", TINY)
def test_activation_checkpointing_gives_the_same_outputs_and_grads(name):
    """In training mode with drop path (the recomputation replays the RNG), to 1e-6; each block runs twice."""
    results = []
    for enable in (False, True):
        torch.manual_seed(0)
        model = registry.build(name, depth=2, drop_path_rate=0.2, activation_checkpointing=enable).train()
        assert model.grad_checkpointing is enable
        block_calls = []
        for block in model.blocks:
            block.register_forward_pre_hook(lambda *_, calls=block_calls: calls.append(1))
        torch.manual_seed(1)
        out = model(clip(frames=4, size=32, batch=2))
        F.cross_entropy(out, torch.tensor([1, 7])).backward()
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters()}, len(block_calls)))
    (out_plain, grads_plain, calls_plain), (out_ckpt, grads_ckpt, calls_ckpt) = results
    assert (calls_plain, calls_ckpt) == (2, 4)  # the checkpointed blocks ran again in the backward pass
    torch.testing.assert_close(out_ckpt, out_plain, atol=1e-6, rtol=0)
    assert grads_ckpt.keys() == grads_plain.keys()
    for param_name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[param_name], grad, atol=1e-6, rtol=0, msg=param_name)


def test_activation_checkpointing_is_off_without_grad():
    model = registry.build("motionformer_tiny", depth=1, activation_checkpointing=True).eval()
    block_calls = []
    model.blocks[0].register_forward_pre_hook(lambda *_: block_calls.append(1))
    with torch.no_grad():
        model(clip(frames=4, size=32, batch=1))
    assert len(block_calls) == 1


def test_drop_path_rises_linearly():
    model = registry.build("motionformer_tiny", drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in model.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_spatial_resize_uses_the_originals_scale_factor():
    table = torch.randn(1, 1 + 14 * 14, 8)
    resized = resize_spatial_pos_embed(table, (21, 21))
    grid = table[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, scale_factor=math.sqrt(441 / 196), mode="bicubic")
    assert resized.shape == (1, 1 + 441, 8)
    torch.testing.assert_close(
        resized[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 441, 8), atol=0, rtol=0
    )
    torch.testing.assert_close(resized[:, 0], table[:, 0])
    assert resize_spatial_pos_embed(table, (14, 14)) is table
    assert resize_spatial_pos_embed(table, (7, 21)).shape == (1, 1 + 147, 8)  # non-square: by size


def test_spatial_resize_where_the_originals_scale_rounds_down():
    # sqrt(29²/14²)·14 floors to 28 (the original would fail here); we fall back to size=
    table = torch.randn(1, 1 + 14 * 14, 4)
    grid = table[:, 1:].reshape(1, 14, 14, 4).permute(0, 3, 1, 2)
    assert F.interpolate(grid, scale_factor=math.sqrt(29**2 / 14**2), mode="bicubic").shape[-1] == 28
    by_size = F.interpolate(grid, size=(29, 29), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 29 * 29, 4)
    torch.testing.assert_close(resize_spatial_pos_embed(table, (29, 29))[:, 1:], by_size, atol=0, rtol=0)


def test_temporal_resize_and_other_clip_shapes():
    temp = torch.randn(1, 4, 8)
    assert resize_temporal_embed(temp, 4) is temp
    longer = resize_temporal_embed(temp, 8)
    assert longer.shape == (1, 8, 8)
    torch.testing.assert_close(
        longer.mean(1), temp.mean(1), atol=1e-6, rtol=1e-5
    )  # linear, align_corners=False
    torch.manual_seed(0)
    for name in TINY:  # built for 8 frames at 64 px, fed 12 frames at 80 px
        model = registry.build(name, depth=1).eval()
        with torch.no_grad():
            assert model(clip(frames=12, size=80, batch=1)).shape == (1, 10)


def test_positional_embedding_is_separate_space_plus_time():
    torch.manual_seed(0)
    model = VideoTransformer(img_size=32, num_frames=4, patch_size=16, **SMALL)
    with torch.no_grad():
        model.temp_embed.normal_()
    pos = model.positional_embedding(2, 2, 2)  # F=2 frames of 2×2 patches
    assert pos.shape == (1, 9, 24)
    torch.testing.assert_close(pos[0, 0], model.pos_embed[0, 0])
    for f in range(2):
        for p in range(4):
            torch.testing.assert_close(
                pos[0, 1 + f * 4 + p], model.pos_embed[0, 1 + p] + model.temp_embed[0, f]
            )


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("motionformer_tiny", (1, 3, 256, 4)),
        ("orthoformer_tiny", (1, 3, 256, 4)),
        ("joint_tiny", (1, 3, 257, 257)),
        ("divided_tiny", (1, 64, 3, 4, 5)),
    ],
)
def test_attention_maps(name, shape):
    torch.manual_seed(0)
    model = registry.build(name).eval()
    with torch.no_grad():
        maps = model.attention_maps(clip(batch=1))
    assert len(maps) == 4 and all(m.shape == shape for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(shape[:-1]))
