"""SimCLR converters: checkpoints built in the original PyTorch-conversion layouts load into ours.

The v2 original layout (``Separius/SimCLRv2-Pytorch``: ``net.0`` stem, ``net.i.blocks.j`` with a
``projection`` shortcut and a flat ``net`` Sequential of conv / Sequential(BN, ReLU)) is rebuilt
below from its description, filled with random weights and BN statistics, converted, loaded
strictly into ``resnet50`` and compared output-for-output (float32, atol 1e-4 on logits).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.convert import get_converter
from zoo.convert.simclr import convert_v2_head
from zoo.models.heads import ProjectionHead
from zoo.models.resnet import resnet50, resnet50_2x, resnet50_4x


def _bn_relu(channels: int, relu: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU() if relu else nn.Identity())


class _Projection(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.bn = _bn_relu(cout, relu=False)

    def forward(self, x):
        return self.bn(self.shortcut(x))


class _Block(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, project: bool):
        super().__init__()
        self.projection = _Projection(cin, planes * 4, stride) if project else nn.Identity()
        self.net = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False),
            _bn_relu(planes),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            _bn_relu(planes),
            nn.Conv2d(planes, planes * 4, 1, bias=False),
            _bn_relu(planes * 4, relu=False),
        )

    def forward(self, x):
        return torch.relu(self.projection(x) + self.net(x))


class _Blocks(nn.Module):
    def __init__(self, n: int, cin: int, planes: int, stride: int):
        super().__init__()
        self.blocks = nn.ModuleList([_Block(cin, planes, stride, True)])
        self.blocks.extend(_Block(planes * 4, planes, 1, False) for _ in range(n - 1))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class _OriginalV2ResNet(nn.Module):
    def __init__(self, width: int = 1):
        super().__init__()
        stem = nn.Sequential(
            nn.Conv2d(3, 64 * width, 7, 2, 3, bias=False), _bn_relu(64 * width), nn.MaxPool2d(3, 2, 1)
        )
        ops, cin = [stem], 64 * width
        for i, n in enumerate((3, 4, 6, 3)):
            ops.append(_Blocks(n, cin, 64 * 2**i * width, 1 if i == 0 else 2))
            cin = 64 * 2**i * width * 4
        self.net = nn.Sequential(*ops)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
        return self.fc(self.net(x).mean(dim=[2, 3]))


def _randomise(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand(t.shape, generator=g) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=g) * 0.05
                )
    return model.eval()


def test_v2_original_layout_gives_the_same_network():
    original = _randomise(_OriginalV2ResNet())
    head = nn.Sequential()  # the 3-layer head as a ModuleList-style "layers" container
    head.layers = nn.ModuleList(
        [
            nn.Linear(2048, 2048, bias=False),
            nn.BatchNorm1d(2048),
            nn.ReLU(),
            nn.Linear(2048, 2048, bias=False),
            nn.BatchNorm1d(2048),
            nn.ReLU(),
            nn.Linear(2048, 128, bias=False),
            nn.BatchNorm1d(128),
        ]
    )
    _randomise(head)
    raw = {"resnet": original.state_dict(), "head": head.state_dict()}

    ours = resnet50().eval()
    state = get_converter("simclr-v2-pytorch")(raw)
    assert set(state) == set(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 64, 64)  # [0, 1] RGB, as the TF models expect
    with torch.no_grad():
        assert torch.allclose(ours(x), original(x), atol=1e-4)

    projector = ProjectionHead(2048, 2048, 128, num_layers=3, last_batch_norm=True).eval()
    projector.load_state_dict(convert_v2_head(raw), strict=True)
    h = torch.randn(3, 2048)
    with torch.no_grad():
        expected = h
        for layer in head.layers:
            expected = layer(expected)
        assert torch.allclose(projector(h), expected, atol=1e-5)


def test_v1_torchvision_layout_round_trip():
    source = _randomise(resnet50())
    raw = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}
    state = get_converter("simclr-v1-pytorch")(raw)
    assert len(state) == 320  # torchvision resnet50: 161 parameters + 159 BN buffers
    target = resnet50()
    target.load_state_dict(state, strict=True)
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


@pytest.mark.parametrize("width", [2, 4])
def test_v1_wider_checkpoints_fit_the_wider_architectures(width):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        source = resnet50(width_multiplier=width)
        target = {2: resnet50_2x, 4: resnet50_4x}[width]()
    state = get_converter("simclr-v1-pytorch")({"state_dict": source.state_dict()})
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in target.state_dict().items()}
    assert target.num_features == 2048 * width and state["conv1.weight"].shape == (64 * width, 3, 7, 7)


def test_unmapped_keys_are_named():
    with pytest.raises(KeyError, match=r"projection_head\.weight"):
        get_converter("simclr-v1-pytorch")(
            {"conv1.weight": torch.zeros(1), "projection_head.weight": torch.zeros(1)}
        )
    sk_block = {"net.1.blocks.0.net.2.main_conv.0.weight": torch.zeros(1), "net.0.0.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match="main_conv"):
        get_converter("simclr-v2-pytorch")({"resnet": sk_block, "head": {}})
