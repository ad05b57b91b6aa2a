"""SeLaVi checkpoints (``facebookresearch/selavi``: ``selavi_{ave,kinetics_sound,kinetics,vgg_sound}.pth``).

``main.py`` saves ``{"epoch", "dist", "model", "optimizer", "selflabels"[, "amp"]}``:

* ``model`` — the DDP state dict of ``AVModel`` (every key prefixed ``module.``):
  ``video_network.base.*`` (torchvision R(2+1)D-18, ``fc`` = identity), ``audio_network.base.*``
  (ResNet-9 without ``fc``) and, per head h, ``mlp_v{h}`` / ``mlp_a{h}`` (``mlp_v`` / ``mlp_a`` with one
  head) = ``MLPv2``: ``block_forward.{2: Linear no bias, 4: BatchNorm1d, 8: Linear}`` (the indices skip
  ``Flatten``, ``Dropout``, ``Unsqueeze``, ``ReLU``);
* ``selflabels`` — (N, heads) the self-labels of the N training samples;
* ``dist`` — the Gaussian cluster sizes ``K_dist``: a list of (K, 1) tensors (one per head), one (K, 1)
  tensor shared by all heads, or ``None`` (uniform marginal).

The converter maps them onto :class:`zoo.methods.selavi.SeLaVi`'s state dict: ``encoders.video.*``,
``encoders.audio.*``, ``heads.{video,audio}.{h}.{1,2,5}.*`` (:class:`~zoo.models.self_label_head.SelfLabelHead`),
``label_buffers.selflabels.labels`` and ``cluster_sizes`` (heads, K) with ``cluster_sizes_drawn``.
``optimizer``, ``amp`` and ``epoch`` are training state and are dropped.
"""

from __future__ import annotations

import re

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_selavi"]

_TOWERS = {"video_network.base.": "encoders.video.", "audio_network.base.": "encoders.audio."}
_HEAD = re.compile(r"^mlp_([va])(\d*)\.block_forward\.(\d+)\.(.+)$")
_HEAD_LAYERS = {"2": "1", "4": "2", "8": "5"}  # MLPv2 Sequential index -> SelfLabelHead index
_MODALITY = {"v": "video", "a": "audio"}


@register_converter("selavi")
def convert_selavi(raw: dict) -> dict[str, torch.Tensor]:
    """A SeLaVi training checkpoint → the state dict of ``SeLaVi`` (encoders, heads, self-labels, sizes)."""
    missing = [k for k in ("model", "selflabels") if k not in raw]
    if missing:
        raise KeyError(
            f"selavi: no {missing} in the file (a SeLaVi checkpoint holds 'model', 'selflabels', 'dist')"
        )
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in unwrap_state_dict(raw, key="model", source="selavi checkpoint").items():
        tower = next((p for p in _TOWERS if key.startswith(p)), None)
        head = _HEAD.match(key)
        if tower is not None:
            out[_TOWERS[tower] + key[len(tower) :]] = value
        elif head is not None and head.group(3) in _HEAD_LAYERS:
            modality, index, layer, name = head.groups()
            out[f"heads.{_MODALITY[modality]}.{int(index or 0)}.{_HEAD_LAYERS[layer]}.{name}"] = value
        else:
            unmapped.append(key)
    if unmapped:
        shown = ", ".join(unmapped[:10]) + (" ..." if len(unmapped) > 10 else "")
        raise KeyError(f"selavi: {len(unmapped)} keys of no SeLaVi module: {shown}")
    labels = raw["selflabels"]
    if not isinstance(labels, torch.Tensor) or labels.ndim != 2:
        raise ValueError(f"selavi: 'selflabels' must be an (N, heads) tensor, got {type(labels).__name__}")
    heads = labels.shape[1]
    classifier = out.get("heads.video.0.5.weight")
    if classifier is None:
        raise KeyError("selavi: no video head 'mlp_v0.block_forward.8.weight' (or 'mlp_v...') in 'model'")
    out["label_buffers.selflabels.labels"] = labels.long()
    out["cluster_sizes"], drawn = _cluster_sizes(raw.get("dist"), heads, classifier.shape[0])
    out["cluster_sizes_drawn"] = torch.tensor(drawn)
    return out


def _cluster_sizes(dist: object, heads: int, num_clusters: int) -> tuple[torch.Tensor, bool]:
    """``dist`` of the file as (heads, K) float64 sizes, and whether it was drawn (None: uniform ones)."""
    if dist is None:
        return torch.ones(heads, num_clusters, dtype=torch.float64), False
    rows = list(dist) if isinstance(dist, list | tuple) else [dist]
    sizes = torch.stack([torch.as_tensor(r, dtype=torch.float64).reshape(-1) for r in rows])  # (heads|1, K)
    if sizes.shape[1] != num_clusters or len(sizes) not in (1, heads):
        raise ValueError(
            f"selavi: 'dist' of shape {tuple(sizes.shape)} fits neither {heads} heads nor K={num_clusters}"
        )
    return sizes.expand(heads, num_clusters).clone(), True
