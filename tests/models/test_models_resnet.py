"""ResNet (2D) and video ResNet (R3D, R(2+1)D): sizes, shapes and the shared backbone API."""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.models.video_resnet import middle_channels

# parameter counts of the reference implementations with their default heads (torchvision's
# published figures: resnet18 11.69M, resnet34 21.80M, resnet50 25.56M, r3d_18 33.37M, r2plus1d_18 31.51M)
REFERENCE_PARAMS = {
    ("resnet18", 1000): 11_689_512,
    ("resnet34", 1000): 21_797_672,
    ("resnet50", 1000): 25_557_032,
    ("r3d_18", 400): 33_371_472,
    ("r2plus1d_18", 400): 31_505_325,
}


@pytest.mark.parametrize(("name", "num_classes"), list(REFERENCE_PARAMS))
def test_parameter_counts_match_reference(name, num_classes):
    with torch.device("meta"):
        model = registry.build(name, num_classes=num_classes)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[(name, num_classes)]


def test_simclr_widths():
    with torch.device("meta"):
        widths = {n: registry.build(n, num_classes=0) for n in ("resnet50", "resnet50_2x", "resnet50_4x")}
    assert {n: m.num_features for n, m in widths.items()} == {
        "resnet50": 2048,
        "resnet50_2x": 4096,
        "resnet50_4x": 8192,
    }
    # SimCLR reports 24M / 94M / 375M parameters for ResNet-50 1x / 2x / 4x (Table 6 of the paper)
    millions = {n: sum(p.numel() for p in m.parameters()) / 1e6 for n, m in widths.items()}
    assert round(millions["resnet50"]) == 24 and round(millions["resnet50_2x"]) == 94
    assert round(millions["resnet50_4x"]) == 375


def test_r2plus1d_middle_channels_match_the_3d_parameter_count():
    assert middle_channels(64, 64) == 144  # first R(2+1)D-18 stage
    for cin, cout in [(64, 128), (128, 256), (16, 32)]:
        m = middle_channels(cin, cout)
        assert m * (9 * cin + 3 * cout) <= 27 * cin * cout < (m + 1) * (9 * cin + 3 * cout)


@pytest.mark.parametrize(
    ("name", "shape", "feature_shape"),
    [
        ("resnet18", (2, 3, 64, 64), (2, 512, 2, 2)),
        ("r3d_tiny", (2, 3, 8, 64, 64), (2, 64, 1, 4, 4)),
        ("r2plus1d_tiny", (2, 3, 8, 64, 64), (2, 64, 1, 4, 4)),
    ],
)
def test_backbone_api(name, shape, feature_shape):
    torch.manual_seed(0)
    model = registry.build(name, num_classes=7).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == feature_shape
        pooled = model.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        logits = model(x)
        assert logits.shape == (2, 7)
        assert torch.allclose(logits, model.fc(pooled), atol=1e-6)
    assert all(any(k.startswith(p) for p in model.classifier_keys) for k in ("fc.weight", "fc.bias"))
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.allclose(model(x), pooled, atol=1e-6)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet18", "r3d_tiny"])
def test_grad_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    model = registry.build(name, num_classes=4).eval()  # eval: BN statistics are not updated twice
    x = torch.randn((2, 3, 4, 32, 32) if name.startswith("r3d") else (2, 3, 32, 32))
    model(x).square().sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x.requires_grad_()).square().sum().backward()
    for a, p in zip(plain, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-5)


def test_tiny_video_encoders_are_small():
    for name in ("r3d_tiny", "r2plus1d_tiny"):
        n = sum(p.numel() for p in registry.build(name, num_classes=0).parameters())
        assert 100_000 < n < 500_000, (name, n)


def test_frame_difference_input():
    torch.manual_seed(0)
    plain = registry.build("r3d_tiny", num_classes=0).eval()
    residual = registry.build("r3d_tiny", num_classes=0, frame_difference=True).eval()
    residual.load_state_dict(plain.state_dict())
    clip = torch.randn(2, 3, 5, 32, 32)
    with torch.no_grad():
        assert torch.allclose(residual(clip), plain(clip[:, :, 1:] - clip[:, :, :-1]), atol=1e-6)
        static = clip[:, :, :1].expand(-1, -1, 5, -1, -1)  # a still scene: all frame differences are zero
        assert torch.allclose(residual(static), plain(torch.zeros(2, 3, 4, 32, 32)), atol=1e-6)
