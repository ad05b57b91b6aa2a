"""Shared fixtures: a tiny registered architecture and a catalog built in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from helpers import TinyNet

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and immune to OpenMP stalls on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes a real home cache."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("ZOO_CACHE", str(root / "zoo"))
    monkeypatch.setenv("HF_HOME", str(root / "hf_home"))


@pytest.fixture(scope="session")
def tiny_arch() -> str:
    from zoo import registry

    def zoo_test_tinynet(**kwargs) -> TinyNet:
        """A tiny classifier used only by the tests."""
        return TinyNet(**kwargs)

    if not registry.is_model("zoo_test_tinynet"):
        registry.register_model(zoo_test_tinynet)
    return "zoo_test_tinynet"


@pytest.fixture
def make_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write ``entries`` as a catalog file and make it the packaged catalog for the test."""
    from zoo import catalog as catalog_mod

    def make(entries: dict) -> Path:
        path = tmp_path / "checkpoints.yaml"
        path.write_text(yaml.safe_dump(entries, sort_keys=False))
        parsed = catalog_mod.parse_catalog(path)
        monkeypatch.setattr(catalog_mod, "catalog", lambda: parsed)
        monkeypatch.setattr("zoo.api.catalog", lambda: parsed)
        return path

    return make


@pytest.fixture
def tiny_synth_data(tmp_path: Path) -> dict:
    """VideoDataModule arguments for a tiny SynthMotion set (2 classes, 32 px) generated under ``tmp_path``."""
    synth = {
        "num_classes": 2,
        "train_per_class": 4,
        "val_per_class": 2,
        "test_per_class": 2,
        "size": 32,
        "num_frames": 8,
        "long_videos": 0,
        "reid_identities": 0,
        "audio": False,
        "qa_per_clip": 0,
    }
    return {
        "synth": synth,
        "synth_root": str(tmp_path / "synth"),
        "num_frames": 4,
        "batch_size": 4,
        "num_workers": 0,
        "persistent_workers": False,
    }
