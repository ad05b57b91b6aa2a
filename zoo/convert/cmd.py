"""CMD pre-training files (``pretrain.py``: ``torch.save(net.module.state_dict(), "epoch_N.pth")``).

No CMD weights were published; this reads the files the released code writes, so a model trained with it
loads into :class:`zoo.methods.cmd.CMD` (or one tower into a plain backbone through a multi-tower catalog
entry). A file is the raw state dict of the released ``Net`` (optionally under ``state_dict`` / ``model``
or with DDP's ``module.``):

* ``rgb_backbone.*`` — Kenshohara-style ``ResNet2p1d`` (``conv1_s``/``bn1_s``/``conv1_t``/``bn1_t`` stem,
  bottlenecks ``conv1 bn1 conv2_s bn2_s conv2_t bn2_t conv3 bn3 downsample``) → ``encoders.video.*``
  of ``r2plus1d_26`` (``stem.{0,1,3,4}``, ``layerK.B.conv1.{0,1}``, ``conv2.0.{0,1,3}``, ``conv2.1``,
  ``conv3.{0,1}``); the released ``resnet26_3d`` (``conv1 bn1`` stem, 3D ``conv2 bn2``) maps the same way;
* ``m_backbone.*`` — ``ResNet3d`` (``conv1 bn1``, basic blocks ``conv1 bn1 conv2 bn2``) →
  ``encoders.motion_vectors.*`` of ``r3d_10_mv`` (``stem.{0,1}``, ``conv1.{0,1}``, ``conv2.{0,1}``);
* ``i_backbone.*`` — a 2D ResNet-10 written with 1xkxk ``Conv3d`` over (B, 3, 1, H, W) keyframes →
  ``encoders.keyframe.*`` of ``resnet10`` (same names, the unit time axis of each kernel dropped);
* ``fc``, ``k_embedding``, ``q_embedding``, ``transformer.{encoder,decoder}.layers.{i}.*`` →
  ``motion_predictor.{input_proj, memory_pos, query_pos, encoder.{i}, decoder.{i}}``;
* ``{mq,mk,iq,ik}_head.{0,1,3,4}`` (Conv1d k=1 + BN + ReLU + Conv1d + BN) →
  ``{motion_query,motion_key,context_query,context_key}_head.{0,1,3,4}``: the Conv1d weights lose their
  last axis, and the first Conv1d's bias is folded into the BN that follows it (``running_mean -= bias``:
  exact in eval mode, and a bias before a BN in training mode changes nothing).

Keys the mapping does not know are an error that names them.
"""

from __future__ import annotations

import re

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_cmd"]

FORMAT = "cmd-pth"

_TOWERS = {
    "rgb_backbone.": "encoders.video.",
    "m_backbone.": "encoders.motion_vectors.",
    "i_backbone.": "encoders.keyframe.",
}
_BLOCK = r"^(layer\d\.\d+)\."
_BACKBONE_RULES = [  # Kenshohara-style ResNet2p1d / ResNet3d (basic or bottleneck) → VideoResNet
    (r"^conv1_s\.", "stem.0."),
    (r"^bn1_s\.", "stem.1."),
    (r"^conv1_t\.", "stem.3."),
    (r"^bn1_t\.", "stem.4."),
    (r"^conv1\.", "stem.0."),  # R3D stem
    (r"^bn1\.", "stem.1."),
    (_BLOCK + r"conv1_s\.", r"\1.conv1.0.0."),  # (2+1)D basic block
    (_BLOCK + r"bn1_s\.", r"\1.conv1.0.1."),
    (_BLOCK + r"conv1_t\.", r"\1.conv1.0.3."),
    (_BLOCK + r"bn1_t\.", r"\1.conv1.1."),
    (_BLOCK + r"conv1\.", r"\1.conv1.0."),  # 3D block or bottleneck's 1x1x1
    (_BLOCK + r"bn1\.", r"\1.conv1.1."),
    (_BLOCK + r"conv2_s\.", r"\1.conv2.0.0."),
    (_BLOCK + r"bn2_s\.", r"\1.conv2.0.1."),
    (_BLOCK + r"conv2_t\.", r"\1.conv2.0.3."),
    (_BLOCK + r"bn2_t\.", r"\1.conv2.1."),
    (_BLOCK + r"conv2\.", r"\1.conv2.0."),
    (_BLOCK + r"bn2\.", r"\1.conv2.1."),
    (_BLOCK + r"conv3\.", r"\1.conv3.0."),
    (_BLOCK + r"bn3\.", r"\1.conv3.1."),
    (_BLOCK + r"(downsample\.\d)\.", r"\1.\2."),
    (r"^fc\.", "fc."),
]
_RULES = {
    "encoders.video.": _BACKBONE_RULES,
    "encoders.motion_vectors.": _BACKBONE_RULES,
    "encoders.keyframe.": None,  # already zoo's names
}
_PREDICTOR = [
    (r"^fc\.weight$", "motion_predictor.input_proj.weight"),
    (r"^k_embedding\.weight$", "motion_predictor.memory_pos.weight"),
    (r"^q_embedding\.weight$", "motion_predictor.query_pos.weight"),
    (r"^transformer\.(encoder|decoder)\.layers\.(\d+)\.", r"motion_predictor.\1.\2."),
]
_HEADS = {"mq": "motion_query", "mk": "motion_key", "iq": "context_query", "ik": "context_key"}
_HEAD = re.compile(r"^(mq|mk|iq|ik)_head\.([0134])\.(.+)$")


def _rename(key: str, rules: list[tuple[str, str]] | None) -> str | None:
    if rules is None:
        return key
    for pattern, replacement in rules:
        renamed, count = re.subn(pattern, replacement, key)
        if count:
            return renamed
    return None


@register_converter(FORMAT)
def convert_cmd(raw: dict) -> dict[str, torch.Tensor]:
    """A CMD ``epoch_N.pth`` state dict → the state dict of :class:`zoo.methods.cmd.CMD`."""
    state = unwrap_state_dict(raw, source=f"{FORMAT} checkpoint")
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    head_bias: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        tower = next((p for p in _TOWERS if key.startswith(p)), None)
        head = _HEAD.match(key)
        if tower is not None:
            target = _TOWERS[tower]
            renamed = _rename(key[len(tower) :], _RULES[target])
            if renamed is None:
                unmapped.append(key)
                continue
            if target == "encoders.keyframe." and value.ndim == 5 and value.shape[2] == 1:
                value = value.squeeze(2)  # its 2D convolutions are Conv3d with 1xkxk kernels
            out[target + renamed] = value
        elif head is not None:
            name, layer, param = head.groups()
            if layer == "0" and param == "bias":
                head_bias[name] = value  # folded into the BN that follows (below)
                continue
            if param == "weight" and layer in ("0", "3"):
                value = value.squeeze(-1)  # Conv1d (out, in, 1) → Linear (out, in)
            out[f"{_HEADS[name]}_head.{layer}.{param}"] = value
        else:
            renamed = _rename(key, _PREDICTOR)
            if renamed is None:
                unmapped.append(key)
            else:
                out[renamed] = value
    if unmapped:
        shown = ", ".join(unmapped[:10]) + (" ..." if len(unmapped) > 10 else "")
        raise KeyError(f"{FORMAT}: {len(unmapped)} keys of no CMD module: {shown}")
    for name, bias in head_bias.items():
        mean_key = f"{_HEADS[name]}_head.1.running_mean"
        if mean_key not in out:
            raise KeyError(
                f"{FORMAT}: '{name}_head.0.bias' without the BatchNorm '{name}_head.1.running_mean'"
            )
        out[mean_key] = out[mean_key] - bias
    return out
