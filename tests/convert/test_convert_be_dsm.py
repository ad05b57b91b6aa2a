"""BE/DSM training checkpoints ({'model': module.-prefixed hassony2-style I3D}) load into zoo's i3d."""

from __future__ import annotations

import argparse
import re

import pytest
import torch

import zoo
from zoo.convert import ConversionError, convert_file

# zoo i3d name -> BE/DSM name, written independently of the converter
_TO_ORIGINAL = [
    (r"^Conv3d_(\w+?)\.", lambda m: f"conv3d_{m.group(1)}."),
    (r"^Mixed_(\w+?)\.", lambda m: f"mixed_{m.group(1)}."),
    (r"\.b0\.", ".branch_0."),
    (r"\.b1a\.", ".branch_1.0."),
    (r"\.b1b\.", ".branch_1.1."),
    (r"\.b2a\.", ".branch_2.0."),
    (r"\.b2b\.", ".branch_2.1."),
    (r"\.b3b\.", ".branch_3.1."),
    (r"\.bn\.", ".batch3d."),
    (r"^logits\.conv3d\.", "id_head.2."),
]


def _original_name(key: str) -> str:
    for pattern, replacement in _TO_ORIGINAL:
        key = re.sub(pattern, replacement, key)
    return key


def _be_file(tmp_path, model):
    state = {}
    for key, value in model.state_dict().items():
        if key == "logits.conv3d.weight":
            value = value.flatten(1)  # the code's Linear(1024, 128)
        state["module." + _original_name(key)] = value.clone()
    path = tmp_path / "be_i3d.pth.tar"
    opt = argparse.Namespace(pt_method="be", pt_nce_k=16384)
    torch.save({"opt": opt, "model": state, "contrast": {}, "optimizer": {}, "epoch": 3}, path)
    return path, state


def test_round_trip_restores_every_tensor_and_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("i3d", num_classes=128, bn_eps=1e-5)
    path, original = _be_file(tmp_path, model)
    assert len(original) == 344 and "module.mixed_5c.branch_3.1.conv3d.weight" in original
    converted = convert_file("be-dsm-i3d", path)
    reloaded = zoo.create_model("i3d", num_classes=128, bn_eps=1e-5)
    reloaded.load_state_dict(converted, strict=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value, rtol=0, atol=0)


def test_a_fine_tuned_file_is_refused_naming_its_classifier(tmp_path):
    torch.manual_seed(0)
    path, state = _be_file(tmp_path, zoo.create_model("i3d", num_classes=128, bn_eps=1e-5))
    state["module.conv3d_0c_1x1_custom.conv3d.weight"] = torch.zeros(101, 1024, 7, 1, 1)
    torch.save({"model": state}, path)
    with pytest.raises(ConversionError, match=r"conv3d_0c_1x1_custom.*fine-tuned"):
        convert_file("be-dsm-i3d", path)
