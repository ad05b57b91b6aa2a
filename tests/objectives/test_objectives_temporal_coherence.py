"""TOT's temporal coherence loss against an independent loop over groups (same anchor draws)."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.objectives.temporal_coherence import temporal_coherence_loss


def _reference(embeddings: torch.Tensor, group_size: int, temperature: float, seed: int) -> float:
    """N-pair loss written out: groups of consecutive frames per video, anchor k, positive k + 1."""
    groups = [
        video[g * group_size : (g + 1) * group_size]
        for video in embeddings
        for g in range(len(video) // group_size)
    ]
    offsets = torch.randint(0, group_size - 1, (len(groups),), generator=torch.Generator().manual_seed(seed))
    anchors = [group[int(k)] for group, k in zip(groups, offsets)]
    positives = [group[int(k) + 1] for group, k in zip(groups, offsets)]
    total = 0.0
    for i, anchor in enumerate(anchors):
        logits = [float(anchor @ positive) / temperature for positive in positives]
        total += -logits[i] + math.log(sum(math.exp(v - max(logits)) for v in logits)) + max(logits)
    return total / len(anchors)


@pytest.mark.parametrize("shape,group_size", [((2, 16, 5), 4), ((3, 10, 4), 3)])
def test_loss_matches_the_written_out_n_pair_loss(shape, group_size):
    embeddings = torch.rand(shape, dtype=torch.float64)
    loss = temporal_coherence_loss(embeddings, group_size, 0.05, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(_reference(embeddings, group_size, 0.05, 1), rel=1e-9)


def test_neighbours_that_embed_alike_give_a_lower_loss():
    steps = torch.linspace(0, 1, 32)[:, None]
    smooth = torch.cat([torch.cos(6 * steps), torch.sin(6 * steps)], 1)[None]  # (1, 32, 2)
    shuffled = smooth[:, torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    low = temporal_coherence_loss(smooth, 4, 0.05, generator=torch.Generator().manual_seed(0))
    high = temporal_coherence_loss(shuffled, 4, 0.05, generator=torch.Generator().manual_seed(0))
    assert low < high


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="group_size must be at least 2"):
        temporal_coherence_loss(torch.rand(2, 8, 3), 1)
    with pytest.raises(ValueError, match="at least two groups"):
        temporal_coherence_loss(torch.rand(1, 5, 3), 4)
