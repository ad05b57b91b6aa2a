"""I3D and C3D: parameter counts and key layouts of the reference ports, TF "SAME" padding, shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import registry
from zoo.models.i3d import MaxPool3dSame, same_padding

# counted by instantiating the reference code on CPU: piergiaj/pytorch-i3d InceptionI3d(num_classes=400),
# DavideA/c3d-pytorch C3D (487 Sports-1M classes), CMD's C3D with BN (num_classes=None)
REFERENCE_PARAMS = {("i3d", 400): 12_697_264, ("c3d", 487): 79_991_015, ("c3d_bn", 0): 27_661_440}


@pytest.mark.parametrize(("name", "num_classes"), list(REFERENCE_PARAMS))
def test_parameter_counts_match_reference(name, num_classes):
    with torch.device("meta"):
        model = registry.build(name, num_classes=num_classes)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[(name, num_classes)]


def test_i3d_keys_follow_the_common_port():
    with torch.device("meta"):
        keys = registry.build("i3d").state_dict()
    assert keys["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert keys["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert keys["Mixed_5c.b3b.bn.running_var"].shape == (128,)
    assert keys["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1) and "logits.conv3d.bias" in keys
    assert not any(".bias" in k for k in keys if ".conv3d." in k and not k.startswith("logits."))
    assert len(keys) == 6 * 57 + 2  # 57 units (conv weight, BN weight/bias/mean/var/count) + logits


@pytest.mark.parametrize(
    ("size", "kernel", "stride"), [(16, 7, 2), (97, 7, 2), (10, 3, 1), (7, 2, 2), (4, 1, 1)]
)
def test_same_padding_is_tensorflows(size, kernel, stride):
    before, after = same_padding((size, 1, 1), (kernel, 1, 1), (stride, 1, 1))[-2:]
    assert after - before in (0, 1)
    out = (size + before + after - kernel) // stride + 1
    assert out == math.ceil(size / stride)  # TF "SAME": ceil(n / s) outputs, extra padding after


def test_same_max_pool_pads_after():
    pool = MaxPool3dSame((1, 3, 3), (1, 2, 2))
    x = torch.arange(16.0).view(1, 1, 1, 4, 4)
    expected = F.max_pool3d(F.pad(x, (0, 1, 0, 1)), (1, 3, 3), (1, 2, 2))  # 4 px, k3 s2: 1 px after only
    assert torch.equal(pool(x), expected)


def test_i3d_shapes_on_odd_clips_and_head():
    torch.manual_seed(0)
    model = registry.build("i3d", num_classes=7, in_chans=2).eval()  # two-channel flow input
    x = torch.randn(1, 2, 10, 50, 70)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (1, 1024, 2, 2, 3)  # ceil(T/8), ceil(H/32), ceil(W/32)
        logits = model(x)
        conv = model.logits.conv3d
        expected = features.mean(dim=(2, 3, 4)) @ conv.weight.flatten(1).T + conv.bias
        assert torch.allclose(logits, expected, atol=1e-5)


def test_i3d_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = registry.build("i3d", num_classes=3, drop_rate=0.0).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    model(x).square().sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x.requires_grad_()).square().sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(plain, model.parameters()))


def test_c3d_variants():
    with torch.device("meta"):
        classic = registry.build("c3d")
        bn = registry.build("c3d_bn", num_classes=10)
    assert classic.num_features == 4096 and classic.classifier_keys == ("fc8.",)
    assert {"fc6.weight", "fc7.weight", "fc8.weight"} <= set(classic.state_dict())
    assert not any(k.startswith("bn") for k in classic.state_dict())
    assert (
        bn.num_features == 512 and bn.classifier_keys == ("fc.",) and "bn5b.running_mean" in bn.state_dict()
    )
    assert "fc6.weight" not in bn.state_dict()
    with torch.device("meta"):
        assert classic.forward_features(torch.empty(2, 3, 16, 112, 112)).shape == (2, 512, 2, 7, 7)
        assert classic(torch.empty(2, 3, 16, 112, 112)).shape == (2, 487)
        assert bn(torch.empty(2, 3, 8, 64, 48)).shape == (2, 10)  # any clip size


def test_c3d_classic_head_names_the_clip_size_it_needs():
    with torch.device("meta"):
        classic = registry.build("c3d")
        with pytest.raises(ValueError, match=r"16×112×112 clip, got a 1×3×3 map.*c3d_bn"):
            classic(torch.empty(2, 3, 16, 64, 64))
