"""Training state that methods keep across steps: a queue of keys and a label per training sample.

Both are ``nn.Module`` buffers, so they move with the method to its device, are saved in every
checkpoint and come back on resume. Both gather across ranks: every rank holds the same queue and
the same labels.

* :class:`MemoryQueue` — the MoCo-style FIFO of past keys used as extra negatives
  (``zoo.objectives.infonce``); a method :meth:`~MemoryQueue.stage`\\ s keys during its step and
  :class:`~zoo.methods.base.SSLMethod` enqueues them after the optimiser step, so the keys of a
  batch are never negatives of that same batch.
* :class:`LabelBuffer` — pseudo-labels indexed by the dataset's sample ``index`` (k-means in XDC,
  Sinkhorn self-labelling in SeLaVi), written by whole-dataset passes and read by the steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.objectives.distributed import gather_uneven

__all__ = ["LabelBuffer", "MemoryQueue", "gather_by_index"]


class MemoryQueue(nn.Module):
    """A FIFO of the last ``size`` keys of dimension ``dim``, gathered from every rank.

    Args:
        size: number of keys held (K).
        dim: key dimension (D).
        normalize_init: start from random unit vectors (MoCo) instead of zeros.
    """

    def __init__(self, size: int, dim: int, normalize_init: bool = True):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"MemoryQueue needs size >= 1 and dim >= 1, got size={size}, dim={dim}")
        keys = torch.randn(size, dim)
        self.register_buffer("keys", nn.functional.normalize(keys, dim=1) if normalize_init else keys * 0)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))  # valid keys so far (≤ K)
        self._staged: list[torch.Tensor] = []

    @property
    def size(self) -> int:
        return len(self.keys)

    def valid(self) -> torch.Tensor:
        """The keys enqueued so far (min(filled, K), D), without gradient."""
        return self.keys[: int(self.filled)].detach()

    def stage(self, keys: torch.Tensor) -> None:
        """Hold this rank's ``keys`` (B, D) until :meth:`flush` (called after the optimiser step)."""
        if keys.ndim != 2 or keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"queue keys must be (B, {self.keys.shape[1]}), got {tuple(keys.shape)}")
        self._staged.append(keys.detach())

    @torch.no_grad()
    def flush(self) -> int:
        """Enqueue the staged keys of every rank (oldest out first); returns how many were added."""
        if not self._staged:
            return 0
        keys = gather_uneven(torch.cat(self._staged)).to(self.keys.dtype)  # (W·B, D)
        self._staged.clear()
        keys = keys[-self.size :]  # more keys than slots: the newest win
        n, start = len(keys), int(self.ptr)
        positions = (torch.arange(n, device=self.keys.device) + start) % self.size
        self.keys[positions] = keys
        self.ptr.fill_((start + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))
        return n


class LabelBuffer(nn.Module):
    """A label per training sample (``heads`` labels each), addressed by the sample's ``index``.

    Unassigned samples hold ``-1``. The buffer is sized by :meth:`resize` when the training set is
    known (``SSLMethod.setup``); a checkpoint restores its contents, whatever size it was built with.

    Args:
        num_samples: training-set size N (0 until known).
        heads: labels per sample (several clustering heads, as SeLaVi).
    """

    def __init__(self, num_samples: int = 0, heads: int = 1):
        super().__init__()
        self.register_buffer("labels", torch.full((num_samples, heads), -1, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.labels)

    def resize(self, num_samples: int) -> None:
        """Hold ``num_samples`` rows, all unassigned (no-op when the size already matches)."""
        if len(self.labels) != num_samples:
            self.labels = torch.full(
                (num_samples, self.labels.shape[1]), -1, dtype=torch.long, device=self.labels.device
            )

    @torch.no_grad()
    def update(self, index: torch.Tensor, labels: torch.Tensor, gather: bool = True) -> None:
        """Write ``labels`` (B,) or (B, heads) at the samples ``index`` (B,) of every rank."""
        labels = labels.reshape(len(index), -1).to(self.labels.device, torch.long)
        index = index.to(self.labels.device, torch.long)
        if gather:
            index, labels = gather_uneven(index), gather_uneven(labels)
        if len(index) and (index.min() < 0 or index.max() >= len(self.labels)):
            raise IndexError(
                f"sample index out of range for a label buffer of {len(self.labels)} samples "
                f"(got {int(index.min())}..{int(index.max())})"
            )
        self.labels[index] = labels

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Labels (B, heads) of the samples ``index`` (B,); ``-1`` where none was assigned."""
        return self.labels[index.to(self.labels.device, torch.long)]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "labels")
        if saved is not None and saved.shape != self.labels.shape:  # restored before the data is known
            self.labels = torch.empty_like(saved, device=self.labels.device)
        super()._load_from_state_dict(state_dict, prefix, *args)


def gather_by_index(index: torch.Tensor, **values: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gather ``index`` (B,) and per-sample ``values`` from every rank, sorted by index, duplicates dropped.

    ``DistributedSampler`` pads the last batch with repeated samples; each index is kept once.
    """
    index = gather_uneven(index)
    gathered = {k: gather_uneven(v) for k, v in values.items()}
    order = torch.argsort(index, stable=True)
    index = index[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return {"index": index[keep], **{k: v[order][keep] for k, v in gathered.items()}}
