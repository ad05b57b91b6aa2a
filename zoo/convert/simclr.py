"""SimCLR v1/v2 ResNet-50 checkpoints, as converted to PyTorch by the two widely used converters.

The official checkpoints (``google-research/simclr``) are TensorFlow; the community converted them:

* ``simclr-v1-pytorch`` — ``tonylins/simclr-converter`` (``ResNet50_{1x,2x,4x}`` → ``resnet50-{1x,2x,4x}.pth``):
  ``{"state_dict": torchvision-layout ResNet-50 (Nx)}`` — ``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
  ``layerN.0.downsample.{0,1}``, ``fc`` (the 1000-way linear-evaluation head). v1 checkpoints carry
  no projection head. Note: that converter assigns the TF head bias to ``fc.weight.bias`` (an
  attribute, not the parameter), so ``fc.bias`` of its files is the random initial value of
  torchvision's ``Linear``; the backbone is unaffected.
* ``simclr-v2-pytorch`` — ``Separius/SimCLRv2-Pytorch`` (``r50_{1,2}x_sk0.pth``):
  ``{"resnet": ..., "head": ...}`` with the backbone as ``net.0`` (stem: ``net.0.0`` conv,
  ``net.0.1.0`` BN), ``net.{1..4}.blocks.{j}`` (``projection.shortcut`` + ``projection.bn.0``,
  ``net.{0,2,4}`` convs, ``net.{1,3,5}.0`` BNs) and ``fc``; ``head.layers.{0,1,3,4,6,7}`` is the
  3-layer projection head (dropped by the backbone converter; :func:`convert_v2_head` maps it onto
  :class:`zoo.models.heads.ProjectionHead`). Selective-kernel (``sk1``) files are not supported:
  their keys are reported as unmapped.

Both give ``resnet50`` / ``resnet50_2x`` / ``resnet50_4x`` state dicts. The TF models take RGB in
[0, 1] without mean/std normalisation.
"""

from __future__ import annotations

import re

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_v1", "convert_v2", "convert_v2_head"]

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_V1_KEY = re.compile(
    rf"^(conv1\.weight|bn1\.{_BN}|fc\.(weight|bias)"
    rf"|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.{_BN}|downsample\.0\.weight|downsample\.1\.{_BN}))$"
)

# Separius layout -> ours: (pattern, replacement) applied to the full key
_V2_RULES = [
    (re.compile(r"^net\.0\.0\.weight$"), "conv1.weight"),
    (re.compile(rf"^net\.0\.1\.0\.{_BN}$"), r"bn1.\1"),
    (
        re.compile(r"^net\.([1-4])\.blocks\.(\d+)\.projection\.shortcut\.weight$"),
        r"layer\1.\2.downsample.0.weight",
    ),
    (re.compile(rf"^net\.([1-4])\.blocks\.(\d+)\.projection\.bn\.0\.{_BN}$"), r"layer\1.\2.downsample.1.\3"),
    (re.compile(r"^net\.([1-4])\.blocks\.(\d+)\.net\.0\.weight$"), r"layer\1.\2.conv1.weight"),
    (re.compile(rf"^net\.([1-4])\.blocks\.(\d+)\.net\.1\.0\.{_BN}$"), r"layer\1.\2.bn1.\3"),
    (re.compile(r"^net\.([1-4])\.blocks\.(\d+)\.net\.2\.weight$"), r"layer\1.\2.conv2.weight"),
    (re.compile(rf"^net\.([1-4])\.blocks\.(\d+)\.net\.3\.0\.{_BN}$"), r"layer\1.\2.bn2.\3"),
    (re.compile(r"^net\.([1-4])\.blocks\.(\d+)\.net\.4\.weight$"), r"layer\1.\2.conv3.weight"),
    (re.compile(rf"^net\.([1-4])\.blocks\.(\d+)\.net\.5\.0\.{_BN}$"), r"layer\1.\2.bn3.\3"),
    (re.compile(r"^fc\.(weight|bias)$"), r"fc.\1"),
]
_V2_HEAD_KEY = re.compile(rf"^layers\.(\d+)\.({_BN[1:-1]})$")


def _unmapped_error(fmt: str, keys: list[str]) -> KeyError:
    shown = ", ".join(keys[:10]) + (" ..." if len(keys) > 10 else "")
    return KeyError(f"{fmt}: {len(keys)} unmapped keys: {shown}")


@register_converter("simclr-v1-pytorch")
def convert_v1(raw: dict) -> dict[str, torch.Tensor]:
    """``tonylins/simclr-converter`` files (``{"state_dict": ...}`` or a bare state dict) → resnet50(_Nx)."""
    state = unwrap_state_dict(raw, source="simclr-v1-pytorch checkpoint")
    unmapped = [k for k in state if not _V1_KEY.match(k)]
    if unmapped:
        raise _unmapped_error("simclr-v1-pytorch", unmapped)
    return dict(state)


@register_converter("simclr-v2-pytorch")
def convert_v2(raw: dict) -> dict[str, torch.Tensor]:
    """``Separius/SimCLRv2-Pytorch`` files ``{"resnet", "head"}`` → resnet50(_Nx); ``head`` is dropped."""
    if "resnet" not in raw:
        raise KeyError(
            f"simclr-v2-pytorch: expected a dict with 'resnet' (and 'head'); got keys {sorted(raw)[:5]}"
        )
    if set(raw) - {"resnet", "head"}:
        raise _unmapped_error("simclr-v2-pytorch", sorted(set(raw) - {"resnet", "head"}))
    out, unmapped = {}, []
    for key, value in unwrap_state_dict(raw, key="resnet", source="simclr-v2-pytorch checkpoint").items():
        for pattern, replacement in _V2_RULES:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise _unmapped_error("simclr-v2-pytorch", unmapped)
    return out


def convert_v2_head(raw: dict) -> dict[str, torch.Tensor]:
    """The v2 projection head (``raw["head"]``) → ``ProjectionHead(F, F, 128, num_layers=3)`` keys."""
    out, unmapped = {}, []
    for key, value in raw["head"].items():
        match = _V2_HEAD_KEY.match(key)
        if match:
            out[f"{match.group(1)}.{match.group(2)}"] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise _unmapped_error("simclr-v2-pytorch head", unmapped)
    return out
