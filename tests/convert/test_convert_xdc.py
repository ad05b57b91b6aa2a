"""XDC converter: files written in the authors' layout load into ``r2plus1d_18_vmz``, look-alikes are named.

The original layout is rebuilt below from its description (``HumamAlwassel/XDC``'s
``model/r2plus1d_18.py`` over torchvision's ``VideoResNet``): torchvision's key names, and middle
channels recomputed inside every (2+1)D convolution from that convolution's own (in, out). Against
the original code itself (not run here), the converted encoder gives identical logits.
"""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.catalog import catalog
from zoo.convert import ConversionError, convert_file
from zoo.convert.xdc import xdc_layout
from zoo.models.video_resnet import r2plus1d_18, r2plus1d_18_vmz

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (() if name == "num_batches_tracked" else (channels,)) for name in _BN}


def _conv2plus1d(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    mid = (cin * cout * 3 * 3 * 3) // (
        cin * 3 * 3 + 3 * cout
    )  # XDC's Conv2Plus1D ignores the block's midplanes
    return {
        f"{prefix}.0.weight": (mid, cin, 1, 3, 3),
        **_bn(f"{prefix}.1", mid),
        f"{prefix}.3.weight": (cout, mid, 3, 1, 1),
    }


def original_layout(num_classes: int = 400) -> dict[str, tuple[int, ...]]:
    """Key → shape of the authors' R(2+1)D-18 state dict (torchvision VideoResNet, XDC's Conv2Plus1D)."""
    shapes = {"stem.0.weight": (45, 3, 1, 7, 7), **_bn("stem.1", 45), "stem.3.weight": (64, 45, 3, 1, 1)}
    shapes |= _bn("stem.4", 64)
    cin = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            shapes |= _conv2plus1d(f"{p}.conv1.0", cin, planes) | _bn(f"{p}.conv1.1", planes)
            shapes |= _conv2plus1d(f"{p}.conv2.0", planes, planes) | _bn(f"{p}.conv2.1", planes)
            if block == 0 and stage > 1:
                shapes |= {
                    f"{p}.downsample.0.weight": (planes, cin, 1, 1, 1),
                    **_bn(f"{p}.downsample.1", planes),
                }
            cin = planes
    return shapes | {"fc.weight": (num_classes, 512), "fc.bias": (num_classes,)}


def original_file(path, num_classes: int = 400, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights and BatchNorm statistics in the original layout, saved as the authors' .pth."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in original_layout(num_classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    torch.save(state, path)
    return state


def test_the_layout_is_the_released_one():
    layout = original_layout()
    assert len(layout) == 224  # tensors of the released files
    assert layout["layer2.0.conv2.0.0.weight"][0] == 288  # torchvision: 230
    assert layout["layer3.0.conv2.0.0.weight"][0] == 576  # 460
    assert layout["layer4.0.conv2.0.0.weight"][0] == 1152  # 921
    assert xdc_layout() == {k: v for k, v in layout.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("num_classes", [400, 1000])
def test_round_trip_of_a_file_in_the_original_layout(tmp_path, num_classes):
    path = tmp_path / "r2plus1d_18_xdc_ig65m_kinetics.pth"
    original = original_file(path, num_classes)
    converted = convert_file("xdc-pth", path)
    assert converted.keys() == original.keys()
    model = r2plus1d_18_vmz(num_classes=num_classes)
    model.load_state_dict(converted, strict=True)  # every key, every shape
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key
    assert model.stem[1].eps == 1e-3  # Caffe2 BatchNorm eps: 1e-5 moves the logits by ~0.1


def test_catalog_entry_loads_the_encoder_without_its_fc(tmp_path, make_catalog):
    path = tmp_path / "r2plus1d_18_xdc_audioset.pth"
    original = original_file(path, num_classes=400, seed=1)
    shipped = catalog()["xdc-audioset"]
    assert shipped.weights[0].format == "xdc-pth"
    make_catalog(  # the shipped entry, with the file as its source
        {
            "xdc-audioset": {
                "arch": shipped.arch,
                "arch_args": dict(shipped.arch_args),
                "weights": [{"file": {"path": str(path), "format": "xdc-pth"}}],
                "license": "MIT",
            }
        }
    )
    model = zoo.load("xdc-audioset")
    assert not model.training and model.num_features == 512
    state = model.state_dict()
    assert not any(k.startswith("fc.") for k in state)
    for key, value in state.items():
        assert torch.equal(value, original[key]), key
    features = model.forward_head(model.forward_features(torch.randn(1, 3, 8, 32, 32)), pre_logits=True)
    assert features.shape == (1, 512)


def test_a_torchvision_layout_r2plus1d_is_named(tmp_path):
    path = tmp_path / "gdt_video.pth"
    torch.save(r2plus1d_18(num_classes=400).state_dict(), path)  # block mid-planes: 230 in layer2.0.conv2
    with pytest.raises(ConversionError, match=r"230 middle channels .* torchvision-layout R\(2\+1\)D-18"):
        convert_file("xdc-pth", path)


def test_a_checkpoint_of_another_method_is_named(tmp_path):
    path = tmp_path / "gdt_K400.pth"
    video = {f"video_network.base.{k}": v for k, v in r2plus1d_18(num_classes=0).state_dict().items()}
    torch.save({"model": {**video, "audio_network.base.conv1.weight": torch.zeros(64, 1, 7, 7)}}, path)
    with pytest.raises(ConversionError, match=r"gdt_K400\.pth.*another method"):
        convert_file("xdc-pth", path)


def test_missing_and_foreign_keys_are_listed(tmp_path):
    path = tmp_path / "broken.pth"
    state = original_file(path)
    del state["layer4.1.conv2.1.running_mean"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(
        ConversionError, match=r"1 missing: layer4\.1\.conv2\.1\.running_mean; 1 unexpected: extra"
    ):
        convert_file("xdc-pth", path)
