"""Every self-supervised method: its shipped SynthMotion recipe fits a few steps through `zoo fit`,
the checkpoint reloads into the method, and every encoder in it rebuilds with `load_encoder`."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_fit_override

from zoo.cli import main
from zoo.methods.base import SSLMethod
from zoo.registry import import_submodules
from zoo.run_checkpoints import load_encoder
from zoo.serialization import safe_torch_load

CONFIGS = Path(__file__).parents[2] / "configs"


def _methods() -> list[type[SSLMethod]]:
    import_submodules("zoo.methods")
    found, todo = [], list(SSLMethod.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("zoo.methods.") and not inspect.isabstract(cls):
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


def _recipe(method: type[SSLMethod]) -> Path:
    return CONFIGS / method.__module__.rsplit(".", 1)[-1] / "synthmotion.yaml"


def test_the_list_is_not_empty():
    assert "SimCLR" in [m.__name__ for m in _methods()]


def _data_args(recipe: Path, data_args: dict) -> dict:
    """The tiny-data arguments the recipe's data module takes (a text-only module takes no ``num_frames``)."""
    class_path = yaml.safe_load(recipe.read_text())["data"]["class_path"]
    module, name = class_path.rsplit(".", 1)
    accepted = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    return {k: v for k, v in data_args.items() if k in accepted or k not in _CLIP_ONLY}


_CLIP_ONLY = ("num_frames",)


@pytest.mark.parametrize("method", _methods(), ids=lambda m: m.__name__)
def test_method_fits_saves_reloads_and_rebuilds_its_encoders(method, tmp_path, tiny_synth_data):
    recipe = _recipe(method)
    assert recipe.is_file(), f"{method.__name__} has no SynthMotion recipe at {recipe}"
    data = yaml.safe_load(recipe.read_text())["data"]["init_args"]
    synth = data.get("synth") or {}
    if data.get("motion_offset") is not None:  # videos long enough for the clip + gap + motion window
        tiny_synth_data["synth"]["num_frames"] = 24
    if synth.get("long_videos"):  # feature sequences: long videos, one a batch, sampled as the recipe says
        tiny_synth_data["synth"]["long_videos"] = 6
        tiny_synth_data.update(batch_size=1)
        del tiny_synth_data["num_frames"]
    if data.get("audio"):  # audio-visual methods: clips with sound
        tiny_synth_data["synth"]["audio"] = True
    if synth.get("qa_per_clip"):  # QA items: the recipe's questions per clip
        tiny_synth_data["synth"]["qa_per_clip"] = synth["qa_per_clip"]
    override = tiny_fit_override(tmp_path, _data_args(recipe, tiny_synth_data))
    assert main(["fit", "--config", str(recipe), "--config", str(override)]) == 0
    path = tmp_path / "ckpt" / "last.ckpt"
    model = method.load_from_checkpoint(path)
    checkpoint = safe_torch_load(path)
    assert checkpoint["global_step"] == 2
    state = checkpoint["state_dict"]
    for modality in model.encoder_specs:
        encoder = load_encoder(path, modality)
        for name, value in encoder.state_dict().items():
            torch.testing.assert_close(value, state[f"encoders.{modality}.{name}"], rtol=0, atol=0)
            torch.testing.assert_close(value, model.encoders[modality].state_dict()[name], rtol=0, atol=0)
