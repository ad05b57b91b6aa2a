"""Official Motionformer ``.pyth`` checkpoints -> :class:`zoo.models.motionformer.VideoTransformer`.

The files are PySlowFast checkpoints: ``{'epoch', 'model_state', 'optimizer_state', 'cfg', ...}``, where
``model_state`` is the state dict of the original ``VisionTransformer`` (no ``module.`` prefix in the
released files; one is stripped if present). Names are kept except:

- ``patch_embed_3d.proj.*`` (the 2×16×16 tubelet Conv3d) -> ``patch_embed.proj.*``;
- ``patch_embed.proj.*`` (a 2D Conv2d used only for ImageNet initialisation) is dropped;
- ``head0.*`` / ``head1.*`` (EPIC-Kitchens verbs / nouns) -> ``head.0.*`` / ``head.1.*``.

The ``v`` half of ``proj_kv`` is kept although the released weights never used it
(``use_original_code=True``). Preprocessing is not stored in the file: SSv2 models take BGR input,
mean = std = 0.5 (recorded in the catalog).
"""

from __future__ import annotations

import math
import re

import torch

from zoo.convert import register_converter
from zoo.errors import WeightsFileError
from zoo.serialization import unwrap_state_dict

# original keys the converter drops on purpose
DROPPED_KEYS = ("patch_embed.proj.weight", "patch_embed.proj.bias")

_BLOCK = re.compile(
    r"blocks\.\d+\.("
    r"norm[123]\.(weight|bias)"
    r"|(attn|timeattn)\.(qkv|proj|proj_q|proj_kv)\.(weight|bias)"
    r"|mlp\.fc[12]\.(weight|bias)"
    r")"
)
_SAME = re.compile(
    r"(cls_token|pos_embed|temp_embed|norm\.(weight|bias)|pre_logits\.fc\.(weight|bias)|head\.(weight|bias))"
)
_RENAMES = ((re.compile(r"patch_embed_3d\.proj\.(weight|bias)"), r"patch_embed.proj.\1"),
            (re.compile(r"head(\d+)\.(weight|bias)"), r"head.\1.\2"))  # fmt: skip


def unwrap(raw: dict) -> dict[str, torch.Tensor]:
    """The model state dict inside a PySlowFast checkpoint (or a bare state dict), ``module.`` removed."""
    try:
        return unwrap_state_dict(raw, source="Motionformer checkpoint")
    except WeightsFileError as exc:
        raise ValueError(f"no Motionformer state dict found ({exc})") from None


def _expected_shape(key: str, width: int) -> tuple[int | None, ...] | None:
    """The shape an original key must have for embedding width C (None: any size on that axis)."""
    C = width
    rules = (
        (r"cls_token", (1, 1, C)),
        (r"pos_embed|temp_embed", (1, None, C)),
        (r"patch_embed_3d\.proj\.weight", (C, None, None, None, None)),
        (
            r"(blocks\.\d+\.)?norm\d?\.(weight|bias)|.*\.(proj|proj_q|fc2)\.bias|patch_embed_3d\.proj\.bias",
            (C,),
        ),
        (r".*\.qkv\.weight", (3 * C, C)),
        (r".*\.qkv\.bias", (3 * C,)),
        (r".*\.proj_kv\.weight", (2 * C, C)),
        (r".*\.proj_kv\.bias", (2 * C,)),
        (r".*\.(attn|timeattn)\.(proj|proj_q)\.weight|pre_logits\.fc\.weight", (C, C)),
        (r"pre_logits\.fc\.bias", (C,)),
        (r".*\.fc1\.weight|head\d*\.weight", (None, C)),
        (r".*\.fc2\.weight", (C, None)),
    )
    for pattern, shape in rules:
        if re.fullmatch(pattern, key):
            return shape
    return None


def _check_shapes(state: dict[str, torch.Tensor]) -> None:
    """Every tensor must agree with the embedding width C of ``cls_token``; ``pos_embed`` is CLS + a square."""
    if "cls_token" not in state:
        raise KeyError("not a Motionformer checkpoint: no 'cls_token'")
    width = state["cls_token"].shape[-1]
    for key, tensor in state.items():
        shape = _expected_shape(key, width)
        if shape is None:
            continue
        if len(shape) != tensor.ndim or any(e is not None and e != n for e, n in zip(shape, tensor.shape)):
            pretty = tuple("*" if e is None else e for e in shape)
            raise ValueError(f"'{key}' has shape {tuple(tensor.shape)}; expected {pretty} for width {width}")
    patches = state["pos_embed"].shape[1] - 1
    if math.isqrt(patches) ** 2 != patches:
        raise ValueError(f"'pos_embed' holds {patches} patch positions, not a square grid")


def _new_name(key: str) -> str | None:
    if _SAME.fullmatch(key) or _BLOCK.fullmatch(key):
        return key
    for pattern, replacement in _RENAMES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


@register_converter("motionformer-pyth")
def convert(raw: dict) -> dict[str, torch.Tensor]:
    """Map an original Motionformer checkpoint to ``VideoTransformer`` keys; unknown keys are an error."""
    state = unwrap(raw)
    _check_shapes(state)
    out, unmapped = {}, []
    for key, tensor in state.items():
        if key in DROPPED_KEYS:
            continue
        new = _new_name(key)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = tensor
    if unmapped:
        raise KeyError(f"Motionformer checkpoint keys with no mapping: {sorted(unmapped)}")
    return out
