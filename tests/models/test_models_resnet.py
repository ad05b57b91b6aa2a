"""ResNet (2D) and video ResNet (R3D, R(2+1)D): sizes, shapes and the shared backbone API."""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.models.video_resnet import VideoResNet, middle_channels

# parameter counts of the reference implementations (torchvision's published figures: resnet18 11.69M,
# resnet34 21.80M, resnet50 25.56M, r3d_18 33.37M, r2plus1d_18 31.51M; the others counted by instantiating
# the original code on CPU: torchvision's VideoResNet with 3-4-6-3 blocks for R3D-34, with VMZ's
# Conv2Plus1D for XDC's R(2+1)D-18 and VMZ's R(2+1)D-34, CMD's resnet26_2p1d / resnet10_3d(inplanes=2,
# first_stride=1) / resnet10_2d without heads, GDT's resnet9 audio net with its 1000-way fc)
REFERENCE_PARAMS = {
    ("resnet18", 1000): 11_689_512,
    ("resnet34", 1000): 21_797_672,
    ("resnet50", 1000): 25_557_032,
    ("r3d_18", 400): 33_371_472,
    ("r2plus1d_18", 400): 31_505_325,
    ("r3d_34", 400): 63_681_104,
    ("r2plus1d_18_vmz", 400): 33_370_839,
    ("r2plus1d_34", 400): 63_697_175,
    ("r2plus1d_26", 0): 26_507_471,
    ("r3d_10", 0): 14_361_792,
    ("r3d_10_mv", 0): 14_352_384,
    ("resnet10", 0): 4_905_792,
    ("resnet9_audio", 1000): 5_412_520,
    ("resnet18_audio", 0): 11_170_240,
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


def _mid_channels(model: VideoResNet, key: str) -> int:
    return model.state_dict()[key].shape[0]


def test_midplanes_rule_per_block_or_per_convolution():
    # torchvision reuses the block's M in conv2; VMZ/XDC recompute it from (planes, planes)
    with torch.device("meta"):
        tv = registry.build("r2plus1d_18")
        vmz = registry.build("r2plus1d_18_vmz")
    for stage, (torchvision_m, vmz_m) in {2: (230, 288), 3: (460, 576), 4: (921, 1152)}.items():
        key = f"layer{stage}.0.conv2.0.0.weight"
        assert (_mid_channels(tv, key), _mid_channels(vmz, key)) == (torchvision_m, vmz_m)
        assert (
            _mid_channels(tv, key.replace("conv2", "conv1"))
            == torchvision_m
            == _mid_channels(vmz, key.replace("conv2", "conv1"))
        )
    assert set(tv.state_dict()) == set(vmz.state_dict())  # same key names, other shapes


def test_batchnorm_eps_and_momentum_are_configurable():
    with torch.device("meta"):
        xdc = registry.build("r2plus1d_18_vmz", bn_momentum=0.9)
    norms = [m for m in xdc.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.9 for m in norms)
    assert all(
        m.eps == 1e-5
        for m in registry.build("r2plus1d_tiny").modules()
        if isinstance(m, torch.nn.BatchNorm3d)
    )


@pytest.mark.parametrize(
    ("stem", "expected"),
    [("r2plus1d", [(45, 3, 1, 7, 7), (64, 45, 3, 1, 1)]), ("r2plus1d_matched", [(83, 3, 1, 7, 7), (64, 83, 3, 1, 1)]),
     ("r3d", [(64, 3, 3, 7, 7)])],
)  # fmt: skip
def test_stems(stem, expected):
    with torch.device("meta"):
        model = VideoResNet(stem=stem, num_classes=0)
    convs = [tuple(m.weight.shape) for m in model.stem if isinstance(m, torch.nn.Conv3d)]
    assert convs == expected


def test_cmd_r2plus1d_26_shapes():
    # CMD's feature pyramid for 16x112x112 clips: layer3 (1024, 4, 7, 7), layer4 (2048, 2, 4, 4)
    with torch.device("meta"):
        model = registry.build("r2plus1d_26", num_classes=0)
        x = torch.empty(2, 3, 16, 112, 112)
        x = model.layer3(model.layer2(model.layer1(model.stem(x))))
        assert x.shape == (2, 1024, 4, 7, 7)
        assert model.layer4(x).shape == (2, 2048, 2, 4, 4)
    assert model.num_features == 2048
    assert model.state_dict()["layer1.0.conv2.0.0.weight"].shape[0] == middle_channels(64, 64) == 144


def test_bottleneck_zero_init_and_forward():
    model = VideoResNet(
        block="bottleneck", layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), zero_init_residual=True
    )
    last_norms = [m.conv3[1].weight for m in model.modules() if hasattr(m, "conv3")]
    assert len(last_norms) == 4 and all(w.eq(0).all() for w in last_norms)
    assert model.num_features == 64
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, 8, 32, 32)).shape == (1, 64, 1, 2, 2)


def test_motion_vector_encoder_keeps_resolution_in_the_stem():
    with torch.device("meta"):
        model = registry.build("r3d_10_mv", num_classes=0)
        out = model.forward_features(torch.empty(2, 2, 16, 56, 56))
    assert model.in_chans == 2 and out.shape == (2, 512, 2, 4, 4)


def test_audio_resnet_reads_one_channel_spectrograms():
    model = registry.build("resnet9_audio").eval()
    assert model.modality == "audio" and model.state_dict()["conv1.weight"].shape == (64, 1, 7, 7)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 40, 99)).shape == (2, 512)  # features out by default
    assert set(registry.build("resnet9_audio", num_classes=1000).state_dict()) - set(model.state_dict()) == {
        "fc.weight",
        "fc.bias",
    }
