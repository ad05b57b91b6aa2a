"""Background Erasing and DSM training checkpoints (``FingerRec/BE``, ``FingerRec/DSM-decoupling-scene-motion``).

Neither project published weights; this reads the files their code writes, so that a model trained
with it loads into zoo. ``pt.py`` saves ``{'opt', 'model', 'contrast', 'optimizer', 'epoch'}`` with
``model`` the state dict of a ``DataParallel`` I3D (every key prefixed ``module.``). The I3D is
hassony2's port (``kinetics_i3d_pytorch``) under other names; to zoo's :mod:`zoo.models.i3d`:

* ``conv3d_1a_7x7`` / ``conv3d_2b_1x1`` / ``conv3d_2c_3x3`` → ``Conv3d_1a_7x7`` / ``Conv3d_2b_1x1`` /
  ``Conv3d_2c_3x3``; ``mixed_3b`` ... ``mixed_5c`` → ``Mixed_3b`` ... ``Mixed_5c``;
* in a unit, ``batch3d`` → ``bn`` (``conv3d`` is kept);
* in a mixed block, ``branch_0`` → ``b0``, ``branch_1.0`` / ``branch_1.1`` → ``b1a`` / ``b1b``,
  ``branch_2.0`` / ``branch_2.1`` → ``b2a`` / ``b2b``, ``branch_3.1`` → ``b3b`` (``branch_3.0`` is the pool);
* the pre-training head ``id_head`` (average pool → ``Linear(1024, 128)`` → L2-normalise) →
  ``logits.conv3d`` as a 1×1×1 convolution, so ``i3d(num_classes=128)`` returns the head's output before
  its normalisation (and ``num_classes=0`` drops it).

The code's BatchNorm uses PyTorch's eps 1e-5: build the network with ``i3d(bn_eps=1e-5)``. Its padding
is TF "SAME" computed once from the kernel, zoo's from the input: equal wherever a strided layer sees
an even size (16×224×224 clips: every layer). Fine-tuned files (``conv3d_0c_1x1_custom``, a 7×1×1
kernel over the pooled map) are not converted: the error names the key.
"""

from __future__ import annotations

import re

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_be_dsm", "rename_be_dsm_key"]

FORMAT = "be-dsm-i3d"
_STEM = {"conv3d_1a_7x7": "Conv3d_1a_7x7", "conv3d_2b_1x1": "Conv3d_2b_1x1", "conv3d_2c_3x3": "Conv3d_2c_3x3"}
_BRANCHES = {
    "branch_0": "b0",
    "branch_1.0": "b1a",
    "branch_1.1": "b1b",
    "branch_2.0": "b2a",
    "branch_2.1": "b2b",
    "branch_3.1": "b3b",
}
_UNIT = r"(conv3d\.weight|batch3d\.(weight|bias|running_mean|running_var|num_batches_tracked))"
_STEM_KEY = re.compile(rf"^(conv3d_1a_7x7|conv3d_2b_1x1|conv3d_2c_3x3)\.{_UNIT}$")
_MIXED_KEY = re.compile(rf"^mixed_(\d[a-z])\.(branch_0|branch_[12]\.[01]|branch_3\.1)\.{_UNIT}$")
_HEAD_KEY = re.compile(r"^id_head\.2\.(weight|bias)$")


def rename_be_dsm_key(key: str) -> str:
    """The zoo ``i3d`` name of one BE/DSM I3D key (without ``module.``); KeyError if it has none."""
    if match := _STEM_KEY.match(key):
        unit, rest = match.group(1), match.group(2)
        return f"{_STEM[unit]}.{rest.replace('batch3d.', 'bn.')}"
    if match := _MIXED_KEY.match(key):
        block, branch, rest = match.group(1), match.group(2), match.group(3)
        return f"Mixed_{block}.{_BRANCHES[branch]}.{rest.replace('batch3d.', 'bn.')}"
    if match := _HEAD_KEY.match(key):
        return f"logits.conv3d.{match.group(1)}"
    hint = " (a fine-tuned file: its classifier is not converted)" if "conv3d_0c_1x1_custom" in key else ""
    raise KeyError(f"{FORMAT}: '{key}' is not a key of the BE/DSM I3D{hint}")


@register_converter(FORMAT)
def convert_be_dsm(raw: dict) -> dict[str, torch.Tensor]:
    """A BE/DSM ``{'model': module.-prefixed state dict}`` (or the bare dict) → zoo ``i3d`` keys."""
    state = unwrap_state_dict(raw, key="model" if isinstance(raw, dict) and "model" in raw else None)
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = rename_be_dsm_key(key)
        if name == "logits.conv3d.weight":
            value = value[:, :, None, None, None]  # Linear (128, 1024) -> Conv3d 1x1x1
        converted[name] = value
    return converted
