"""GDT checkpoints (``facebookresearch/GDT``: ``gdt_K400.pth``, ``gdt_HT100M.pth``, ``gdt_IG65M.pth``).

``main_gdt.py`` saves ``{"model": model.state_dict(), "optimizer", "lr_scheduler", "epoch",
"args": argparse.Namespace}``; STiCA's ``main_stica.py`` saves ``{"epoch", "state_dict"}`` with a DDP
``module.`` prefix. The weights:

* ``video_network.base.*`` — R(2+1)D-18 in torchvision layout (``stem.{0,1,3,4}``,
  ``layerK.J.conv{1,2}.0.{0,1,3}``, ``…conv{1,2}.1``, ``…downsample.{0,1}``), no fc → ``encoders.video.*``
  of :class:`zoo.methods.gdt.GDT` (``r2plus1d_18``, same names);
* ``audio_network.base.*`` — ResNet-9 with its unused 1000-way ``fc`` → ``encoders.audio.*``
  (``resnet9_audio(num_classes=1000)``);
* ``text_network.{word_embd,fc1}.*`` (video–text model) → ``encoders.text.*`` (``word_embedding_text``);
* ``video_pooling.2.transformer.*`` (STiCA) → ``pooling.transformer.*`` of :class:`zoo.methods.stica.STiCA`;
* ``mlp_{v,a,t}.block_forward.{2,4,8}.*`` — the heads ``Dropout, Linear, ·, BN, ·, ReLU, Dropout, Linear``
  → ``heads.{video,audio,text}.{1,2,5}.*`` (:class:`zoo.models.heads.MLPHead` with dropout).

So a converted file loads into the GDT method as is, and the catalog's towers take ``encoders.video.`` /
``encoders.audio.`` / ``encoders.text.``. The ``lr_scheduler`` entry pickles whole training objects
(a ``MultiStepLR`` holding the ``SGD`` optimizer and its ``defaultdict`` state): they are read as inert
placeholders whose state is dropped (:data:`TRAINING_OBJECT_GLOBALS`), so nothing of the file runs.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["TRAINING_OBJECT_GLOBALS", "convert_gdt"]


class _DiscardedObject:
    """Stands in for a pickled training object (optimizer, scheduler); its state is dropped."""

    def __setstate__(self, state: Any) -> None:
        """Keep nothing of the pickled state (no attribute is set, no code of the file runs)."""


def _empty_dict(*args: Any) -> dict:
    """Stands in for ``collections.defaultdict(dict)`` (optimizer state): an empty plain dict."""
    return {}


TRAINING_OBJECT_GLOBALS = (
    (_DiscardedObject, "torch.optim.lr_scheduler.MultiStepLR"),
    (_DiscardedObject, "torch.optim.lr_scheduler.CosineAnnealingLR"),
    (_DiscardedObject, "torch.optim.sgd.SGD"),
    (_empty_dict, "collections.defaultdict"),
    (_empty_dict, "builtins.dict"),
)
"""Placeholders under the names the GDT training objects are pickled with (weights-only loading)."""

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_HEAD_LAYERS = {"2": "1", "4": "2", "8": "5"}  # block_forward index -> MLPHead(dropout) index
_TOWERS = {"v": "video", "a": "audio", "t": "text"}
_RULES = [
    (re.compile(r"^video_network\.base\.(.+)$"), lambda m: f"encoders.video.{m[1]}"),
    (re.compile(r"^audio_network\.base\.(.+)$"), lambda m: f"encoders.audio.{m[1]}"),
    (re.compile(r"^text_network\.((word_embd|fc1)\.(weight|bias))$"), lambda m: f"encoders.text.{m[1]}"),
    (  # STiCA's pooling: Sequential(AdaptiveAvgPool3d, TransposeSqueeze, TransformerPooling)
        re.compile(
            r"^video_pooling\.2\.(transformer\.\d+\.(mha\.[qkv]_lin|mha\.out_lin|norm[12]|ffn\.lin[12])\.(weight|bias))$"
        ),
        lambda m: f"pooling.{m[1]}",
    ),
    (
        re.compile(rf"^mlp_([vat])\.block_forward\.([248])\.({_BN})$"),
        lambda m: f"heads.{_TOWERS[m[1]]}.{_HEAD_LAYERS[m[2]]}.{m[3]}",
    ),
]


@register_converter("gdt", extra_globals=TRAINING_OBJECT_GLOBALS)
def convert_gdt(raw: dict) -> dict[str, torch.Tensor]:
    """A GDT / STiCA training checkpoint (or its bare state dict) → the GDT (STiCA) method's state dict."""
    state = unwrap_state_dict(raw, source="gdt checkpoint")
    out, unmapped = {}, []
    for key, value in state.items():
        for pattern, rename in _RULES:
            match = pattern.match(key)
            if match:
                out[rename(match)] = value
                break
        else:
            unmapped.append(key)
    if unmapped or not any(k.startswith("encoders.video.") for k in out):
        shown = ", ".join(unmapped[:6]) + (" ..." if len(unmapped) > 6 else "")
        raise KeyError(
            f"gdt: {len(unmapped)} of {len(state)} keys are not GDT's "
            f"(expected video_network.base.*, audio_network.base.* or text_network.*, mlp_*): {shown or 'no video tower'}"
        )
    return out
