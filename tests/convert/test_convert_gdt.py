"""GDT converter: round trip through a checkpoint written as ``main_gdt.py`` writes it."""

from __future__ import annotations

import argparse
import re

import pytest
import torch

from zoo.convert import ConversionError, convert_file
from zoo.methods.gdt import GDT
from zoo.serialization import UnsafeCheckpointError, safe_torch_load

_HEAD = {"1": "2", "2": "4", "5": "8"}  # MLPHead(dropout) index -> the original block_forward index
_TOWER = {"video": "v", "audio": "a", "text": "t"}


def _original_key(key: str) -> str:
    """Our method key -> the original GDT model's key (the inverse of the converter, written independently)."""
    for modality, base in (("video", "video_network.base."), ("audio", "audio_network.base.")):
        if key.startswith(f"encoders.{modality}."):
            return base + key[len(f"encoders.{modality}.") :]
    if key.startswith("encoders.text."):
        return "text_network." + key[len("encoders.text.") :]
    if key.startswith(
        "pooling."
    ):  # STiCA: Sequential(AdaptiveAvgPool3d, TransposeSqueeze, TransformerPooling)
        return "video_pooling.2." + key[len("pooling.") :]
    m = re.match(r"heads\.(video|audio|text)\.(\d)\.(.+)", key)
    return f"mlp_{_TOWER[m[1]]}.block_forward.{_HEAD[m[2]]}.{m[3]}"


def _method(**kwargs) -> GDT:
    torch.manual_seed(0)
    method = GDT(
        video_encoder="r2plus1d_tiny",
        audio_encoder_kwargs={"num_classes": 1000},  # the unused fc the GDT files keep
        online_probe=False,
        **kwargs,
    ).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a mis-mapped buffer shows
        for name, buffer in method.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return method


def _write_original(method: GDT, path, legacy: bool = False) -> None:
    """``{"model", "optimizer", "lr_scheduler" (pickled MultiStepLR + SGD), "epoch", "args"}``."""
    state = {_original_key(k): v for k, v in method.state_dict().items()}
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    after = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[241], gamma=0.1)
    warmup = {
        "multiplier": 64,
        "total_epoch": 10,
        "after_scheduler": after,
        "finished": True,
        "last_epoch": 100,
    }
    checkpoint = {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": warmup,
        "epoch": 101,
        "args": argparse.Namespace(hypothesis=1, nce_t=0.07, model="av_gdt"),
    }
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_audio_visual_round_trip(tmp_path, legacy):
    method = _method()
    path = tmp_path / "gdt_K400.pth"
    _write_original(method, path, legacy)
    with pytest.raises(UnsafeCheckpointError, match="MultiStepLR"):
        safe_torch_load(path)  # the training objects are refused by a plain weights-only load ...
    state = convert_file("gdt", path)  # ... and read as inert placeholders by the converter
    assert set(state) == set(method.state_dict())
    fresh = GDT(video_encoder="r2plus1d_tiny", audio_encoder_kwargs={"num_classes": 1000}, online_probe=False)
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    video, audio = torch.randn(2, 3, 4, 32, 32), torch.randn(2, 1, 40, 99)
    for modality, x in (("video", video), ("audio", audio)):
        torch.testing.assert_close(
            fresh.project(modality, x)[1], method.project(modality, x)[1], rtol=0, atol=0
        )


def test_video_text_round_trip(tmp_path):
    method = _method(text_encoder="word_embedding_text", text_encoder_kwargs={"num_embeddings": 30})
    path = tmp_path / "gdt_HT100M.pth"
    _write_original(method, path)
    state = convert_file("gdt", path)
    assert {k for k in state if k.startswith("encoders.text.")} == {
        "encoders.text.word_embd.weight",
        "encoders.text.fc1.weight",
        "encoders.text.fc1.bias",
    }
    fresh = GDT(
        video_encoder="r2plus1d_tiny",
        text_encoder="word_embedding_text",
        text_encoder_kwargs={"num_embeddings": 30},
        online_probe=False,
    )
    fresh.load_state_dict(state, strict=True)
    tokens = torch.randint(0, 30, (3, 20))
    torch.testing.assert_close(fresh.eval().project("text", tokens)[1], method.project("text", tokens)[1])


def test_another_methods_checkpoint_is_named(tmp_path):
    # a SeLaVi-style file: DDP prefix, ten heads per modality
    selavi = {
        "module.video_network.base.stem.0.weight": torch.zeros(1),
        "module.mlp_v0.weight": torch.zeros(1),
        "module.mlp_a0.weight": torch.zeros(1),
    }
    path = tmp_path / "selavi_kinetics.pth"
    torch.save({"model": selavi, "epoch": 3}, path)
    with pytest.raises(
        ConversionError,
        match=r"selavi_kinetics.pth: not a 'gdt' checkpoint .*2 of 3 keys are not GDT's.*mlp_v0",
    ):
        convert_file("gdt", path)


def test_catalog_entry_loads_the_converted_towers(tmp_path, make_catalog):
    """gdt-k400 as shipped (prefixes, ignored heads), fed a converted file (a tiny R(2+1)D for speed)."""
    from pathlib import Path

    import yaml
    from safetensors.torch import save_file

    import zoo

    method = _method()
    _write_original(method, tmp_path / "gdt_K400.pth")
    save_file(convert_file("gdt", tmp_path / "gdt_K400.pth"), str(tmp_path / "gdt.safetensors"))
    shipped = yaml.safe_load((Path(zoo.__file__).parent / "checkpoints.yaml").read_text())["gdt-k400"]
    shipped["towers"]["video"]["arch"] = "r2plus1d_tiny"
    shipped["weights"] = [{"file": {"path": str(tmp_path / "gdt.safetensors")}}]
    make_catalog({"gdt-k400": shipped})
    towers = zoo.load("gdt-k400")
    video, audio = torch.randn(2, 3, 4, 32, 32), torch.randn(2, 1, 40, 99)
    out = towers(video=video, audio=audio)
    torch.testing.assert_close(out["video"], method.embed("video", video), rtol=0, atol=0)
    torch.testing.assert_close(out["audio"], method.embed("audio", audio), rtol=0, atol=0)


def test_stica_round_trip(tmp_path):
    """main_stica.py's {"epoch", "state_dict"} with the DDP prefix and the transformer pooling."""
    from zoo.methods.stica import STiCA

    torch.manual_seed(0)
    method = STiCA(
        video_encoder="r2plus1d_tiny", audio_encoder_kwargs={"num_classes": 1000}, online_probe=False
    ).eval()
    state = {"module." + _original_key(k): v for k, v in method.state_dict().items()}
    assert "module.video_pooling.2.transformer.1.mha.k_lin.weight" in state
    torch.save({"epoch": 151, "state_dict": state}, tmp_path / "stica.pth")
    converted = convert_file("gdt", tmp_path / "stica.pth")
    fresh = STiCA(
        video_encoder="r2plus1d_tiny", audio_encoder_kwargs={"num_classes": 1000}, online_probe=False
    )
    fresh.load_state_dict(converted, strict=True)
    video = torch.randn(2, 3, 8, 64, 64)
    torch.testing.assert_close(
        fresh.eval().view_embeddings(video, {})[2], method.view_embeddings(video, {})[2]
    )
