"""Original Motionformer checkpoints -> ours: key mapping, strict loading, and parity of the forward pass
against an independent functional implementation of the original ``VisionTransformer`` (einsum level,
written from the original's description; it shares no code with ``zoo.models``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.convert import get_converter
from zoo.convert.motionformer import DROPPED_KEYS, convert
from zoo.models.motionformer import VideoTransformer

WIDTH, HEADS, DEPTH, PATCH = 24, 2, 2, 16


# --- a checkpoint in the original layout ------------------------------------------------------------


def original_state_dict(attn: str, num_classes=5, frames=2, seed=0) -> dict[str, torch.Tensor]:
    """Random weights under the original VisionTransformer's key names and shapes (pos_embed is the
    224-px table, 1 + 14·14 entries, whatever the crop; a 2D ``patch_embed`` exists next to the 3D one)."""
    g = torch.Generator().manual_seed(seed)
    C = WIDTH

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "cls_token": rnd(1, 1, C),
        "pos_embed": rnd(1, 1 + 14 * 14, C),
        "temp_embed": rnd(1, frames, C),
        "patch_embed.proj.weight": rnd(C, 3, PATCH, PATCH),
        "patch_embed.proj.bias": rnd(C),
        "patch_embed_3d.proj.weight": rnd(C, 3, 2, PATCH, PATCH, scale=0.02),
        "patch_embed_3d.proj.bias": rnd(C),
    }
    for i in range(DEPTH):
        p = f"blocks.{i}."
        for norm in ("norm1", "norm2") + (("norm3",) if attn == "divided" else ()):
            sd[p + norm + ".weight"], sd[p + norm + ".bias"] = 1 + rnd(C), rnd(C)
        modules = ["attn"] + (["timeattn"] if attn == "divided" else [])
        for m in modules:
            sd[p + m + ".qkv.weight"], sd[p + m + ".qkv.bias"] = rnd(3 * C, C), rnd(3 * C)
            sd[p + m + ".proj.weight"], sd[p + m + ".proj.bias"] = rnd(C, C), rnd(C)
        if attn in ("trajectory", "orthoformer"):
            sd[p + "attn.proj_q.weight"], sd[p + "attn.proj_q.bias"] = rnd(C, C), rnd(C)
            sd[p + "attn.proj_kv.weight"], sd[p + "attn.proj_kv.bias"] = rnd(2 * C, C), rnd(2 * C)
        sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = rnd(4 * C, C), rnd(4 * C)
        sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = rnd(C, 4 * C), rnd(C)
    sd["norm.weight"], sd["norm.bias"] = 1 + rnd(C), rnd(C)
    sd["pre_logits.fc.weight"], sd["pre_logits.fc.bias"] = rnd(C, C), rnd(C)
    if isinstance(num_classes, int):
        sd["head.weight"], sd["head.bias"] = rnd(num_classes, C), rnd(num_classes)
    else:
        for i, n in enumerate(num_classes):
            sd[f"head{i}.weight"], sd[f"head{i}.bias"] = rnd(n, C), rnd(n)
    return sd


def pyslowfast_checkpoint(state: dict) -> dict:
    return {"epoch": 35, "model_state": state, "optimizer_state": {}, "cfg": "VIT:\n  EMBED_DIM: 24\n"}


# --- the original forward pass, functionally ------------------------------------------------------


def ln(x, sd, name):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)


def lin(x, sd, name):
    return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))


def heads_split(t):  # 'b n (h d) -> (b h) n d'
    b, n, _ = t.shape
    return t.reshape(b, n, HEADS, -1).permute(0, 2, 1, 3).reshape(b * HEADS, n, -1)


def heads_merge(t, b):  # '(b h) n d -> b n (h d)'
    _, n, d = t.shape
    return t.reshape(b, HEADS, n, d).permute(0, 2, 1, 3).reshape(b, n, HEADS * d)


def softmax_attend(q, k, v):
    return torch.einsum("bij,bjd->bid", torch.einsum("bid,bjd->bij", q, k).softmax(-1), v)


def original_landmarks(q, m):
    """orthogonal_landmarks: queries only, |cos| table, selected rows 10, argmin of maxima, index order."""
    unit = F.normalize(q, dim=-1)
    b, n, d = unit.shape
    chosen = torch.zeros(b, n, dtype=torch.bool)
    first = torch.randint(n, (b, 1, 1))
    chosen[torch.arange(b), first.view(-1)] = True
    latest, table = unit[torch.arange(b), first.view(-1)], torch.empty(b, n, m)
    for i in range(1, m):
        table[:, :, i - 1] = torch.einsum("bnd,bd->bn", unit, latest).abs()
        scores = table[:, :, :i].clone()
        scores[chosen] = 10.0
        pick = scores.amax(-1).argmin(-1)
        chosen[torch.arange(b), pick] = True
        latest = unit[torch.arange(b), pick]
    return torch.masked_select(q, chosen[..., None]).reshape(b, m, d)


def trajectory_attn(x, sd, p, frames, patches, approx, landmarks):
    b, _, C = x.shape
    d = C // HEADS
    scale = d**-0.5
    q, k, v = (heads_split(t) for t in lin(x, sd, p + "qkv").chunk(3, dim=-1))
    cls_out = heads_merge(softmax_attend(q[:, :1] * scale, k, v), b)
    q_, k_, v_ = q[:, 1:], k[:, 1:], v[:, 1:]
    if approx:
        qs, ks = q_ * d**-0.25, k_ * d**-0.25
        lm = original_landmarks(qs, landmarks)
        k1 = torch.einsum("bnd,bld->bnl", qs, lm).softmax(-1)
        k2 = torch.einsum("bld,bnd->bln", lm, ks).reshape(-1, landmarks, frames, patches).softmax(-1)
        traj = torch.einsum("blfp,bfpd->blfd", k2, v_.reshape(-1, frames, patches, d))
        traj = torch.einsum("bnl,blfd->bnfd", k1, traj)
    else:
        sim = torch.einsum("bqd,bkd->bqk", q_, k_).reshape(-1, frames * patches, frames, patches)
        traj = torch.einsum("bqfn,bfnd->bqfd", (scale * sim).softmax(-1), v_.reshape(-1, frames, patches, d))
    # (b h) s f d -> b s f (h d)
    traj = (
        traj.reshape(b, HEADS, frames * patches, frames, d).permute(0, 2, 3, 1, 4).reshape(b, -1, frames, C)
    )
    own = torch.stack([traj[:, s, s // patches] for s in range(frames * patches)], dim=1)  # (b, S, C)
    q2 = (lin(own, sd, p + "proj_q") * scale).reshape(b, -1, HEADS, d)
    k2 = lin(traj, sd, p + "proj_kv")[..., :C].reshape(b, -1, frames, HEADS, d)
    attn = torch.einsum("bshd,bsfhd->bhsf", q2, k2).softmax(-1)
    out = torch.einsum("bhsf,bsfhd->bshd", attn, traj.reshape(b, -1, frames, HEADS, d)).reshape(b, -1, C)
    return lin(torch.cat([cls_out, out], dim=1), sd, p + "proj")


def joint_attn(x, sd, p):
    b, _, C = x.shape
    q, k, v = (heads_split(t) for t in lin(x, sd, p + "qkv").chunk(3, dim=-1))
    return lin(heads_merge(softmax_attend(q * (C // HEADS) ** -0.5, k, v), b), sd, p + "proj")


def divided_attn(x, sd, p, frames, patches, over_time):
    b, _, C = x.shape
    q, k, v = (heads_split(t) for t in lin(x, sd, p + "qkv").chunk(3, dim=-1))
    q = q * (C // HEADS) ** -0.5
    cls_out = softmax_attend(q[:, :1], k, v)

    def group(t):  # 'b (f n) d -> (b n) f d' over time, '-> (b f) n d' over space
        t = t.reshape(t.shape[0], frames, patches, -1)
        return (t.transpose(1, 2) if over_time else t).reshape(
            -1, patches if not over_time else frames, t.shape[-1]
        )

    q_, k_, v_ = group(q[:, 1:]), group(k[:, 1:]), group(v[:, 1:])
    r = q_.shape[0] // k.shape[0]
    k_ = torch.cat([k[:, :1].repeat_interleave(r, 0), k_], dim=1)
    v_ = torch.cat([v[:, :1].repeat_interleave(r, 0), v_], dim=1)
    out = softmax_attend(q_, k_, v_)
    if over_time:
        out = out.reshape(-1, patches, frames, out.shape[-1]).transpose(1, 2)
    out = out.reshape(-1, frames * patches, out.shape[-1])
    return lin(heads_merge(torch.cat([cls_out, out], dim=1), b), sd, p + "proj")


def original_forward(sd, video, attn, crop, landmarks=8):
    """Eval-mode VisionTransformer.forward: returns softmax probabilities (a list for several heads)."""
    x = F.conv3d(
        video, sd["patch_embed_3d.proj.weight"], sd["patch_embed_3d.proj.bias"], stride=(2, PATCH, PATCH)
    )
    x = x.flatten(2).transpose(1, 2)
    b, C = x.shape[0], x.shape[-1]
    frames = sd["temp_embed"].shape[1]
    x = torch.cat([sd["cls_token"].expand(b, -1, -1), x], dim=1)
    npatch = (x.shape[1] - 1) // frames
    pos = sd["pos_embed"]
    if crop != 224:
        n = pos.shape[1] - 1
        grid = pos[:, 1:].reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), C).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=math.sqrt(npatch / n), mode="bicubic")
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, C)], dim=1)
    tiled = pos[:, 1:].repeat(1, frames, 1) + sd["temp_embed"].repeat_interleave(npatch, 1)
    x = x + torch.cat([sd["pos_embed"][:, :1], tiled], dim=1)
    for i in range(DEPTH):
        p = f"blocks.{i}."
        if attn == "divided":
            x = x + divided_attn(ln(x, sd, p + "norm3"), sd, p + "timeattn.", frames, npatch, over_time=True)
            x = x + divided_attn(ln(x, sd, p + "norm1"), sd, p + "attn.", frames, npatch, over_time=False)
        elif attn == "joint":
            x = x + joint_attn(ln(x, sd, p + "norm1"), sd, p + "attn.")
        else:
            y = ln(x, sd, p + "norm1")
            x = x + trajectory_attn(y, sd, p + "attn.", frames, npatch, attn == "orthoformer", landmarks)
        h = F.gelu(lin(ln(x, sd, p + "norm2"), sd, p + "mlp.fc1"))
        x = x + lin(h, sd, p + "mlp.fc2")
    cls = torch.tanh(lin(ln(x, sd, "norm")[:, 0], sd, "pre_logits.fc"))
    if "head.weight" in sd:
        return lin(cls, sd, "head").softmax(-1)
    return [lin(cls, sd, f"head{i}").softmax(-1) for i in range(2)]


# --- tests -----------------------------------------------------------------------------------------


def ours_for(attn, crop, num_classes=5, frames=2, landmarks=8):
    return VideoTransformer(
        img_size=crop, num_frames=2 * frames, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
        num_classes=num_classes, attn_type=attn, pos_embed_grid=14, num_landmarks=landmarks, chunk_size=50,
    ).eval()  # fmt: skip


@pytest.mark.parity
@pytest.mark.parametrize(
    ("attn", "crop", "num_classes"),
    [
        ("trajectory", 224, 5),
        ("trajectory", 112, 5),  # 7×7 grid from the 14×14 table: resized by scale_factor 0.5
        ("trajectory", 336, 5),  # the HR resize, 14 -> 21
        ("trajectory", 112, (3, 4)),  # EPIC-Kitchens: head0 verbs, head1 nouns
        ("joint", 112, 5),
        ("divided", 112, 5),
        ("orthoformer", 112, 5),
    ],
)
def test_converted_checkpoint_reproduces_the_original_forward(attn, crop, num_classes):
    raw = original_state_dict(attn, num_classes)
    model = ours_for(attn, crop, num_classes)
    model.load_state_dict(convert(pyslowfast_checkpoint(raw)), strict=True)
    video = torch.randn(2, 3, 4, crop, crop, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)  # Orthoformer's first landmark is random: same seed, same landmark
    with torch.no_grad():
        logits = model(video)
        torch.manual_seed(5)
        expected = original_forward(raw, video, attn, crop)
    if isinstance(num_classes, int):
        logits, expected = (logits,), (expected,)
    for ours, theirs in zip(logits, expected):
        assert not torch.allclose(ours.sum(-1), torch.ones(2))  # ours are logits ...
        torch.testing.assert_close(
            ours.softmax(-1), theirs, atol=1e-5, rtol=0
        )  # ... the original's eval output is softmax


@pytest.mark.parity
def test_converted_checkpoint_through_a_file(tmp_path):
    raw = original_state_dict("trajectory")
    path = tmp_path / "k400_motionformer_224_16x4.pyth"
    torch.save(pyslowfast_checkpoint({f"module.{k}": v for k, v in raw.items()}), path)
    state = get_converter("motionformer-pyth")(torch.load(path, weights_only=True))
    model = ours_for("trajectory", 112)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        video = torch.randn(1, 3, 4, 112, 112)
        torch.testing.assert_close(
            model(video).softmax(-1), original_forward(raw, video, "trajectory", 112), atol=1e-5, rtol=0
        )


def test_key_mapping_is_explicit():
    raw = original_state_dict("trajectory", num_classes=(3, 4))
    state = convert({"model_state": raw})
    assert set(raw) - set(DROPPED_KEYS) - {"patch_embed_3d.proj.weight", "patch_embed_3d.proj.bias",
                                            "head0.weight", "head0.bias", "head1.weight", "head1.bias"} <= set(state)  # fmt: skip
    assert torch.equal(state["patch_embed.proj.weight"], raw["patch_embed_3d.proj.weight"])
    assert torch.equal(state["head.1.weight"], raw["head1.weight"])
    assert len(state) == len(raw) - len(DROPPED_KEYS)


def test_unknown_keys_and_bad_shapes_are_errors():
    raw = original_state_dict("trajectory")
    with pytest.raises(KeyError, match="st_embed"):
        convert({"model_state": {**raw, "st_embed": torch.zeros(1, 5, WIDTH)}})
    bad = dict(raw)
    bad["blocks.1.attn.proj_kv.weight"] = torch.zeros(WIDTH, WIDTH)
    with pytest.raises(ValueError, match="proj_kv"):
        convert({"model_state": bad})
    with pytest.raises(ValueError, match="no Motionformer state dict"):
        convert({"epoch": 3})
