"""Features of a frozen encoder over a dataloader, cached as safetensors.

Every protocol of :mod:`zoo.eval` (linear probe, kNN, retrieval, clustering) runs on the
:class:`FeatureSet` returned here, so features are computed once per (model, split).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import track
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["FeatureSet", "embed", "extract_features", "load_features", "save_features"]


def embed(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features (B, F) of a zoo backbone (any other module: its output)."""
    if hasattr(encoder, "forward_features") and hasattr(encoder, "forward_head"):
        return encoder.forward_head(encoder.forward_features(x), pre_logits=True)
    return encoder(x)


@dataclass
class FeatureSet:
    """Features (N, F) float32, labels (N,) int64 and dataset indexes (N,) int64, on the CPU."""

    features: torch.Tensor
    labels: torch.Tensor
    indexes: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


def save_features(features: FeatureSet, path: str | Path) -> None:
    """Write atomically (temporary file + rename): a killed run never leaves a partial cache."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tensors = {"features": features.features, "labels": features.labels, "indexes": features.indexes}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def load_features(path: str | Path) -> FeatureSet:
    tensors = load_file(str(path))
    return FeatureSet(tensors["features"], tensors["labels"], tensors["indexes"])


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    dataloader: Iterable[dict[str, Any]],
    *,
    input_key: str = "video",
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    description: str = "features",
) -> FeatureSet:
    """Run ``encoder`` (eval mode, no grad) over ``dataloader`` batches ``{input_key, label, index}``.

    An input with a views dimension — (B, V, C, T, H, W) clips or (B, V, C, H, W) images, e.g.
    several test clips × crops — gives the mean of the V features. With ``cache``, an existing file
    is loaded instead of computing, and a computed set is written there.
    """
    if cache is not None and Path(cache).is_file():
        return load_features(cache)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    feats, labels, indexes = [], [], []
    offset = 0
    for batch in track(dataloader, description=description, disable=not progress, transient=True):
        x = batch[input_key].to(device, non_blocking=True)
        has_views = x.ndim == 6 or (x.ndim == 5 and input_key.startswith("image"))
        if has_views:  # (B, V, C, [T,] H, W)
            f = embed(encoder, x.flatten(0, 1))
            f = f.reshape(x.shape[0], -1, f.shape[-1]).mean(dim=1)  # average over the V views
        else:
            f = embed(encoder, x)
        feats.append(f.float().cpu())
        n = len(f)
        labels.append(
            torch.as_tensor(batch["label"]).long().cpu() if "label" in batch else torch.full((n,), -1)
        )
        index = batch.get("index")
        indexes.append(
            torch.as_tensor(index).long().cpu() if index is not None else torch.arange(offset, offset + n)
        )
        offset += n
    encoder.train(was_training)
    result = FeatureSet(torch.cat(feats), torch.cat(labels), torch.cat(indexes))
    if cache is not None:
        save_features(result, cache)
    return result
