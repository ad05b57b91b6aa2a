"""Process-group helpers and an autograd-correct ``all_gather`` for contrastive negatives.

Everything here is a no-op in a single process (no initialised ``torch.distributed`` group), so
losses call :func:`gather_with_grad` unconditionally and run unchanged on a laptop or a cluster.

Gradient convention: each rank computes a loss on its own anchors against the gathered candidates;
the backward of the gather sums, over ranks, the gradients flowing into every rank's slice and
hands each rank its own. Together with DDP's gradient averaging this gives exactly the gradient of
the mean loss over the global batch (the single-process gradient), which ``tests/objectives/
test_objectives_ddp.py`` checks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward all-reduces (sums) the gradients and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gathered = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, x.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(grads)  # (W, *x.shape)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (same shape on every rank) over ranks along dim 0, keeping gradients.

    Rank ``r``'s rows sit at ``[r * len(x), (r + 1) * len(x))`` of the result.
    """
    if get_world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over ranks along dim 0 without autograd (labels, masks, features for eval)."""
    if get_world_size() == 1:
        return x
    gathered = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(gathered, x.contiguous())
    return torch.cat(gathered, dim=0)


@torch.no_grad()
def gather_uneven(x: torch.Tensor) -> torch.Tensor:
    """Like :func:`gather_no_grad` for tensors whose first dimension differs between ranks."""
    if get_world_size() == 1:
        return x
    length = torch.tensor([len(x)], device=x.device)
    lengths = gather_no_grad(length).tolist()
    padded = torch.zeros((max(lengths), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: len(x)] = x
    gathered = gather_no_grad(padded).split(max(lengths))
    return torch.cat([chunk[:n] for chunk, n in zip(gathered, lengths)])


def global_weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """This rank's share of ``Σ w·v / Σ w`` over the samples of every rank, for per-sample ``values`` (N,).

    A weighted mean, or a mean over a subset whose size differs between ranks, is not the mean of the
    per-rank means. Each rank divides its own ``Σ w·v`` by the weight summed over every rank (and scales by
    the world size, which DDP's gradient average takes back), so the ranks' mean value and the DDP gradient
    are those of one process over the global batch. 0 when no rank has weight.

    Args:
        values: per-sample losses (N,) of this rank (N may be 0 and differ between ranks).
        weights: their non-negative weights (N,).
    """
    total = weights.sum().detach().to(values.dtype)
    if get_world_size() > 1:
        total = total.clone()
        dist.all_reduce(total)
    return (
        (weights.to(values.dtype) * values).sum()
        * get_world_size()
        / total.clamp_min(torch.finfo(total.dtype).tiny)
    )
