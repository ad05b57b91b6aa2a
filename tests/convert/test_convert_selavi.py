"""SeLaVi converter: a checkpoint written in the original training layout (``{"epoch", "dist", "model"
(DDP, ``module.``), "optimizer", "selflabels"}``, heads as ``MLPv2`` Sequentials) round-trips onto the method,
output for output, with its self-labels and cluster sizes; the catalog's towers take the encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.api import tower_states
from zoo.catalog import get_entry
from zoo.convert import ConversionError, convert_file
from zoo.methods.selavi import SeLaVi
from zoo.registry import build

HEADS, K, N = 3, 6, 20


class _Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1)


class _Unsqueeze(nn.Module):
    def forward(self, x):
        return x.unsqueeze(-1)


def _original_head(num_clusters: int) -> nn.Module:
    """The original head's layout (``MLPv2.block_forward``), rebuilt from its description."""
    head = nn.Module()
    head.block_forward = nn.Sequential(
        _Flatten(),
        nn.Dropout(0.3),
        nn.Linear(512, 512, bias=False),
        _Unsqueeze(),
        nn.BatchNorm1d(512),
        _Flatten(),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(512, num_clusters),
    )
    for module in head.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2)
            module.weight.data.normal_()
            module.bias.data.normal_()
    return head


def _original_checkpoint(path, heads=HEADS, dist="per_head"):
    """An original SeLaVi file: encoders from the registry (torchvision layout), ``heads`` MLPv2 heads."""
    torch.manual_seed(0)
    video, audio = build("r2plus1d_18", num_classes=0), build("resnet9_audio", num_classes=0)
    model = {f"video_network.base.{k}": v for k, v in video.state_dict().items()}
    model |= {f"audio_network.base.{k}": v for k, v in audio.state_dict().items()}
    originals = {}
    for h in range(heads):
        for m in "va":
            name = f"mlp_{m}{h}" if heads > 1 else f"mlp_{m}"
            originals[name] = _original_head(K)
            model |= {f"{name}.{k}": v for k, v in originals[name].state_dict().items()}
    sizes = {
        "per_head": [torch.rand(K, 1, dtype=torch.float64) * 3 + 1 for _ in range(heads)],
        "shared": torch.rand(K, 1, dtype=torch.float64) * 3 + 1,
        None: None,
    }[dist]
    raw = {
        "epoch": 200,
        "dist": sizes,
        "model": {f"module.{k}": v for k, v in model.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]},
        "selflabels": torch.randint(0, K, (N, heads)),
    }
    torch.save(raw, path)
    return raw, video, audio, originals


def test_round_trip_loads_every_key_and_gives_the_original_outputs(tmp_path):
    path = tmp_path / "selavi_vgg_sound.pth"
    raw, video, audio, originals = _original_checkpoint(path)
    model = SeLaVi.from_original_checkpoint(path)
    assert model.hparams.heads == HEADS and model.hparams.num_clusters == K
    torch.testing.assert_close(model.selflabels.labels, raw["selflabels"])
    torch.testing.assert_close(model.cluster_sizes, torch.cat(raw["dist"], 1).T)
    assert bool(model.cluster_sizes_drawn)
    clips, spectrograms = torch.randn(2, 3, 8, 32, 32), torch.randn(2, 1, 64, 40)
    video_logits, audio_logits = model(clips, spectrograms)
    video.eval(), audio.eval()
    with torch.no_grad():
        for h in range(HEADS):
            expected_v = originals[f"mlp_v{h}"].eval().block_forward(video(clips))
            expected_a = originals[f"mlp_a{h}"].eval().block_forward(audio(spectrograms))
            torch.testing.assert_close(video_logits[h], expected_v, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(audio_logits[h], expected_a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dist", ["shared", None])
def test_one_head_names_and_shared_or_absent_sizes(tmp_path, dist):
    path = tmp_path / "one_head.pth"
    raw, *_ = _original_checkpoint(path, heads=1, dist=dist)
    state = convert_file("selavi", path)
    assert "heads.video.0.5.weight" in state and "heads.audio.0.2.running_var" in state
    if dist is None:
        assert torch.equal(state["cluster_sizes"], torch.ones(1, K, dtype=torch.float64))
        assert not bool(state["cluster_sizes_drawn"])
    else:
        torch.testing.assert_close(state["cluster_sizes"], raw["dist"].T)


def test_catalog_towers_take_the_encoders_of_the_converted_file(tmp_path):
    path = tmp_path / "selavi.pth"
    _original_checkpoint(path, heads=10)
    state = convert_file("selavi", path)
    for name in ("selavi-ave", "selavi-kinetics-sound", "selavi-kinetics", "selavi-vgg-sound"):
        entry = get_entry(name)
        parts = tower_states(entry, state, name)
        for modality, tower in entry.towers.items():
            build(tower.arch, **tower.arch_args).load_state_dict(parts[modality], strict=True)


def test_a_checkpoint_of_another_method_is_named(tmp_path):
    gdt = {
        "model": {
            "module.video_network.base.stem.0.weight": torch.zeros(1),
            "module.mlp_v.block_forward.0.weight": torch.zeros(1),
        },
        "args": {"hypothesis": 1},
        "epoch": 1,
    }
    torch.save(gdt, tmp_path / "gdt.pth")
    with pytest.raises(ConversionError, match=r"gdt\.pth: not a 'selavi' checkpoint .*selflabels.*"):
        convert_file("selavi", tmp_path / "gdt.pth")
    gdt["selflabels"] = torch.zeros(3, 1, dtype=torch.long)
    torch.save(gdt, tmp_path / "gdt.pth")
    with pytest.raises(ConversionError, match=r"keys of no SeLaVi module: mlp_v\.block_forward\.0\.weight"):
        convert_file("selavi", tmp_path / "gdt.pth")
