"""VideoClassifier: fine-tuning with a new head, mixup, multi-view averaging, layer-wise lr decay."""

import hashlib

import pytest
import torch
from safetensors.torch import save_file

from zoo.methods.classifier import VideoClassifier, layer_id
from zoo.registry import build

TINY = {"img_size": 32, "num_frames": 4}


def test_multiview_prediction_averages_softmax():
    model = VideoClassifier("joint_tiny", TINY, num_classes=3).eval()
    views = torch.randn(2, 4, 3, 4, 32, 32)  # (B, V, C, T, H, W)
    expected = torch.stack([model(views[:, v]).softmax(-1) for v in range(4)], 1).mean(1)
    torch.testing.assert_close(model.predict_views({"video_views": views}), expected)
    torch.testing.assert_close(model.predict_views({"video_views": views}).sum(-1), torch.ones(2))


def test_init_from_catalog_entry_gets_a_new_head(tmp_path, make_catalog):
    torch.manual_seed(0)
    source = build("joint_tiny", num_classes=5, **TINY)
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    make_catalog(
        {
            "joint-demo": {
                "arch": "joint_tiny",
                "arch_args": {"num_classes": 5, **TINY},
                "weights": [{"file": {"path": str(path), "sha256": digest}}],
            }
        }
    )
    model = VideoClassifier("joint_tiny", TINY, num_classes=3, init_from="joint-demo")
    model.load_init_weights()  # what setup("fit") does on a fresh run
    assert model.model.head.out_features == 3
    torch.testing.assert_close(model.model.patch_embed.proj.weight, source.patch_embed.proj.weight)
    same = VideoClassifier("joint_tiny", TINY, num_classes=5, init_from="joint-demo", reset_head=True)
    same.load_init_weights()
    assert not torch.equal(same.model.head.weight, source.head.weight)
    path.unlink()  # rebuilding a fine-tuned model (checkpoint reload, resume) must not need the original
    VideoClassifier("joint_tiny", TINY, num_classes=3, init_from="joint-demo")


def test_tokens_and_positions_are_not_decayed():
    model = VideoClassifier("joint_tiny", TINY, num_classes=2)
    decayed = {id(p) for g in model._param_groups() if g["weight_decay"] > 0 for p in g["params"]}
    for name in ("cls_token", "pos_embed", "temp_embed"):
        assert id(getattr(model.model, name)) not in decayed
    assert id(model.model.patch_embed.proj.weight) in decayed


def test_layer_decay_needs_blocks():
    with pytest.raises(ValueError, match="layer_decay"):
        VideoClassifier("r3d_tiny", num_classes=2, layer_decay=0.5)._param_groups()


def test_mixup_mixes_clips_and_targets():
    model = VideoClassifier("joint_tiny", TINY, num_classes=2, mixup_alpha=0.4)
    video = torch.stack([torch.zeros(3, 4, 32, 32), torch.ones(3, 4, 32, 32)])
    target = torch.eye(2)
    torch.manual_seed(1)
    mixed, soft = model._mix(video, target)
    lam = soft.max(-1).values
    assert ((soft.sum(-1) - 1).abs() < 1e-6).all()
    # each mixed clip is a convex combination whose weight matches its target's weight
    assert torch.allclose(mixed.flatten(1).mean(1), soft[:, 1], atol=1e-6) and (lam >= 0.5).all()


def test_layer_decay_scales_learning_rates_by_depth():
    assert layer_id("patch_embed.proj.weight", 4) == 0
    assert layer_id("blocks.2.attn.qkv.weight", 4) == 3
    assert layer_id("head.weight", 4) == 5
    model = VideoClassifier("joint_tiny", TINY, num_classes=2, layer_decay=0.5, lr=1.0)
    lrs = {g["lr"] for g in model._param_groups()}
    depth = len(model.model.blocks)
    assert max(lrs) == 1.0 and min(lrs) == pytest.approx(0.5 ** (depth + 1))
