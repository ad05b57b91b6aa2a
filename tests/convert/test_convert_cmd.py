"""CMD's pre-training files: a file written in the released layout converts back to the model it came from."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import tiny_cmd

from zoo.convert import get_converter
from zoo.methods.cmd import CMD

TINY = tiny_cmd(decoder_layers=2)
# zoo name → released name, written out for the test (the converter maps the other way)
_VIDEO = [
    (r"stem\.0\.", "conv1_s."),
    (r"stem\.1\.", "bn1_s."),
    (r"stem\.3\.", "conv1_t."),
    (r"stem\.4\.", "bn1_t."),
    (r"\.conv1\.0\.", ".conv1."),
    (r"\.conv1\.1\.", ".bn1."),
    (r"\.conv2\.0\.0\.", ".conv2_s."),
    (r"\.conv2\.0\.1\.", ".bn2_s."),
    (r"\.conv2\.0\.3\.", ".conv2_t."),
    (r"\.conv2\.1\.", ".bn2_t."),
    (r"\.conv3\.0\.", ".conv3."),
    (r"\.conv3\.1\.", ".bn3."),
]
_MOTION = [
    (r"stem\.0\.", "conv1."),
    (r"stem\.1\.", "bn1."),
    (r"\.conv1\.0\.", ".conv1."),
    (r"\.conv1\.1\.", ".bn1."),
    (r"\.conv2\.0\.", ".conv2."),
    (r"\.conv2\.1\.", ".bn2."),
]
_HEADS = {"motion_query": "mq", "motion_key": "mk", "context_query": "iq", "context_key": "ik"}


def _apply(name: str, rules) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def _released_file(model: CMD, video_rules, head_bias: float) -> dict[str, torch.Tensor]:
    """The model's weights as the released ``Net.state_dict()`` would hold them."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoders.video."):
            out["rgb_backbone." + _apply(key[len("encoders.video.") :], video_rules)] = value
        elif key.startswith("encoders.motion_vectors."):
            out["m_backbone." + _apply(key[len("encoders.motion_vectors.") :], _MOTION)] = value
        elif key.startswith("encoders.keyframe."):
            is_conv = value.ndim == 4
            out["i_backbone." + key[len("encoders.keyframe.") :]] = value.unsqueeze(2) if is_conv else value
        elif key.startswith("motion_predictor."):
            rest = key[len("motion_predictor.") :]
            rest = {"input_proj.weight": "fc.weight", "memory_pos.weight": "k_embedding.weight"}.get(
                rest, rest
            )
            rest = {"query_pos.weight": "q_embedding.weight"}.get(rest, rest)
            out[re.sub(r"^(encoder|decoder)\.(\d+)\.", r"transformer.\1.layers.\2.", rest)] = value
        else:
            head, layer, param = re.match(r"(\w+)_head\.(\d)\.(.+)", key).groups()
            name = f"{_HEADS[head]}_head.{layer}.{param}"
            out[name] = value.unsqueeze(-1) if layer in "03" and param == "weight" else value
            if layer == "1" and param == "running_mean":  # a Conv1d bias before the BN, balanced here
                out[f"{_HEADS[head]}_head.0.bias"] = torch.full_like(value, head_bias)
                out[name] = value + head_bias
    return out


def test_released_layout_round_trip_gives_the_same_embeddings():
    torch.manual_seed(0)
    source = CMD(**TINY).eval()
    with torch.no_grad():
        for m in source.modules():  # BN statistics that are not the identity
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    released = _released_file(source, [(r"stem\.0\.", "conv1."), (r"stem\.1\.", "bn1."), *_MOTION[2:]], 0.3)
    converted = get_converter("cmd-pth")({"state_dict": released})
    target = CMD(**TINY).eval()
    target.load_state_dict(converted, strict=True)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(converted[key], value, atol=1e-6, rtol=0)
    inputs = (torch.randn(2, 3, 4, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(4, 2, 4, 32, 32))
    with torch.no_grad():
        for ours, theirs in zip(target.embeddings(*inputs), source.embeddings(*inputs)):
            torch.testing.assert_close(ours, theirs)


def test_r2plus1d_26_names_map_onto_zoo_keys():
    from zoo import registry

    net = registry.build("r2plus1d_26", num_classes=0)
    state = {k: v for k, v in net.state_dict().items()}
    released = {"rgb_backbone." + _apply(k, _VIDEO): v for k, v in state.items()}
    assert (
        "rgb_backbone.conv1_s.weight" in released and released["rgb_backbone.conv1_s.weight"].shape[0] == 83
    )
    assert "rgb_backbone.layer4.1.conv2_t.weight" in released
    converted = get_converter("cmd-pth")(released)
    assert sorted(converted) == sorted("encoders.video." + k for k in state)


def test_unknown_keys_are_named():
    with pytest.raises(KeyError, match=r"rgb_backbone\.layer9\.weird"):
        get_converter("cmd-pth")({"rgb_backbone.layer9.weird": torch.zeros(1)})
