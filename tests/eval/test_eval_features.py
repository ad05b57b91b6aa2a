"""Feature extraction: pooled pre-logits features, view averaging, atomic cache round trip."""

from __future__ import annotations

import torch

from zoo.eval.features import extract_features, load_features
from zoo.models.video_resnet import r3d_tiny


def test_extract_average_views_and_cache(tmp_path):
    torch.manual_seed(0)
    encoder = r3d_tiny(num_classes=5).train()
    clips = torch.randn(6, 3, 4, 32, 32)
    loader = [
        {"video": clips[:4], "label": torch.tensor([0, 1, 2, 3]), "index": torch.tensor([10, 11, 12, 13])},
        {"video": clips[4:], "label": torch.tensor([4, 0]), "index": torch.tensor([14, 15])},
    ]
    cache = tmp_path / "feats.safetensors"
    fs = extract_features(encoder, loader, cache=cache, progress=False)
    assert encoder.training  # mode restored
    encoder.eval()
    with torch.no_grad():
        expected = encoder.forward_head(encoder.forward_features(clips), pre_logits=True)
    assert fs.features.shape == (6, encoder.num_features)
    assert torch.allclose(fs.features, expected, atol=1e-5)
    assert fs.indexes.tolist() == [10, 11, 12, 13, 14, 15] and fs.labels.tolist() == [0, 1, 2, 3, 4, 0]
    assert torch.equal(load_features(cache).features, fs.features)
    assert not list(tmp_path.glob(".*tmp*"))
    # a cached set is reused, not recomputed
    assert torch.equal(extract_features(encoder, [], cache=cache, progress=False).features, fs.features)

    views = torch.stack([clips, clips.flip(-1)], 1)  # (B, 2, C, T, H, W)
    fv = extract_features(encoder, [{"video_views": views, "label": torch.zeros(6)}], progress=False)
    with torch.no_grad():
        flipped = encoder.forward_head(encoder.forward_features(clips.flip(-1)), pre_logits=True)
    assert torch.allclose(fv.features, (expected + flipped) / 2, atol=1e-5)
    assert fv.indexes.tolist() == list(range(6))
