"""TOT checkpoints (``trquhuytin/TOT-CVPR22``) → :class:`zoo.models.tot.TOTNetwork`.

The original saves ``torch.save({"epoch", "state_dict", "optimizer"}, "{log_str}.pth.tar")`` after
training one activity; ``state_dict`` is its ``MLP``: ``fc1.weight`` (2E, D), ``fc1.bias``, ``fc2.weight``
(E, 2E), ``fc2.bias``, ``prototype_layer.weight`` (K, E), and ``fc_last.*`` (E → 1) when it was trained
with ``--time_loss`` (CTE's relative-time regression, not part of TOT's inference: dropped). Names match
ours one to one. ``MLP_bigger`` (``--model mlp_b``: ``fc1`` … ``fc4`` with ReLUs) is another network and is
refused by name. No trained TOT checkpoint is published (the README links features only).
"""

from __future__ import annotations

import os

import torch

from zoo.convert import convert_file, register_converter
from zoo.models.tot import TOTNetwork
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_tot", "load_tot_checkpoint"]

_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "prototype_layer.weight")
_TIME_HEAD = ("fc_last.weight", "fc_last.bias")


@register_converter("tot-pth")
def convert_tot(raw: dict) -> dict[str, torch.Tensor]:
    """``{"state_dict": MLP weights, ...}`` (or the bare state dict) → a :class:`TOTNetwork` state dict."""
    state = unwrap_state_dict(raw, source="tot-pth checkpoint")
    if "fc3.weight" in state:
        raise ValueError(
            "tot-pth: an MLP_bigger checkpoint (fc1-fc4, --model mlp_b); only TOT's MLP converts"
        )
    unknown = sorted(set(state) - set(_KEYS) - set(_TIME_HEAD))
    missing = [k for k in _KEYS if k not in state]
    if unknown or missing:
        raise KeyError(f"tot-pth: missing keys {missing}, unknown keys {unknown[:10]}")
    fc1, fc2, prototypes = state["fc1.weight"], state["fc2.weight"], state["prototype_layer.weight"]
    embed_dim = fc2.shape[0]
    if fc1.shape[0] != 2 * embed_dim or fc2.shape[1] != 2 * embed_dim or prototypes.shape[1] != embed_dim:
        raise ValueError(
            f"tot-pth: shapes do not chain D -> 2E -> E -> K: fc1 {tuple(fc1.shape)}, fc2 {tuple(fc2.shape)}, "
            f"prototype_layer {tuple(prototypes.shape)}"
        )
    return {k: state[k] for k in _KEYS}


def load_tot_checkpoint(path: str | os.PathLike) -> TOTNetwork:
    """A :class:`TOTNetwork` with the weights of an original checkpoint, its sizes read from the weights.

    Args:
        path: the original ``.pth.tar`` file.
    """
    state = convert_file("tot-pth", path)
    embed_dim, feature_dim = state["fc2.weight"].shape[0], state["fc1.weight"].shape[1]
    network = TOTNetwork(feature_dim, embed_dim, state["prototype_layer.weight"].shape[0])
    network.load_state_dict(state, strict=True)
    return network
