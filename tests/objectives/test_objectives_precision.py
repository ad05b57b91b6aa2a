"""Under bf16 autocast every loss of zoo computes its logits, distances and log-probabilities in float32.

Each objective gets bf16 inputs (what a network under autocast hands it) inside ``torch.autocast("cpu",
bfloat16)`` and must return, in float32, what it returns outside autocast for the same values in float32:
only the inputs' rounding may differ, never the arithmetic. A product of unit vectors in bf16 is off by about
1e-2 — 0.1 in logits at τ = 0.1 — and ``‖a‖² + ‖b‖² − 2ab`` cancels to noise, so a loss that left them to
autocast fails by orders of magnitude more than the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from zoo.methods.mmp import conditional_cross_lingual_loss
from zoo.methods.videoqa import masked_positive_loss
from zoo.objectives.context_motion import keyed_info_nce_loss
from zoo.objectives.distillation import layer_distillation_loss
from zoo.objectives.gdt import cross_view_nce_loss, gdt_nce_loss
from zoo.objectives.hashing import joint_multilabel_loss
from zoo.objectives.infonce import cross_modal_info_nce_loss, info_nce_loss, nt_xent_loss
from zoo.objectives.moco import moco_loss
from zoo.objectives.optimal_transport import temporal_ot_assignment
from zoo.objectives.ranking import batch_hard_triplet_loss
from zoo.objectives.temporal_coherence import temporal_coherence_loss

N, D = 12, 32


def _unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _labels() -> torch.Tensor:
    return torch.arange(N) // 3  # P = 4 identities × K = 3


def _multi_hot() -> torch.Tensor:
    return (torch.rand(N, 10, generator=torch.Generator().manual_seed(7)) > 0.6).float()


def _concatenate(text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
    """A fusion without arithmetic (a network's would round its output to bf16 under autocast)."""
    return torch.cat(torch.broadcast_tensors(text, video), dim=-1)


# name -> (loss of float tensors, its float inputs); inputs are rounded to bf16 before either run
CASES: dict[str, tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]] = {
    "info_nce": (lambda q, k: info_nce_loss(q, k, 0.1), (_unit(N, D, seed=0), _unit(N, D, seed=1))),
    "nt_xent": (lambda z: nt_xent_loss(z, 0.2), (_unit(N, 2, D, seed=0),)),
    "cross_modal_info_nce": (
        lambda a, b: cross_modal_info_nce_loss(a, b, 0.05),
        (_unit(N, D, seed=0), _unit(N, D, seed=1)),
    ),
    "moco": (
        lambda q, k, queue: moco_loss(q, k, queue, None, 0.07),
        (_unit(N, D, seed=0), _unit(N, D, seed=1), _unit(64, D, seed=2)),
    ),
    "cmd_keyed_info_nce": (
        lambda q, k: keyed_info_nce_loss(q, k, 0.1),
        (_unit(N, D, seed=0), _unit(2 * N, D, seed=1)),
    ),
    "tot_temporal_coherence": (
        lambda e: temporal_coherence_loss(e, 4, 0.01, generator=torch.Generator().manual_seed(3)),
        (_unit(3, 8, D, seed=0),),
    ),
    "gdt_nce": (
        lambda q, k, n: gdt_nce_loss(q, k, n, 0.07),
        (_unit(N, D, seed=0), _unit(N, D, seed=1), _unit(8, D, seed=2)),
    ),
    "stica_cross_view_nce": (
        lambda a, b: cross_view_nce_loss(a, b, 0.1, gather=False),
        (_unit(N, D, seed=0), _unit(N, D, seed=1)),
    ),
    "reid_batch_hard_triplet": (
        lambda e: batch_hard_triplet_loss(e, _labels(), 0.3),
        (torch.randn(N, D, generator=torch.Generator().manual_seed(0)) * 4,),
    ),
    "dcvh_joint_multilabel": (
        lambda logits: joint_multilabel_loss(logits, _multi_hot()),
        (torch.randn(N, 10, generator=torch.Generator().manual_seed(0)) * 3,),
    ),
    "tot_optimal_transport_codes": (
        lambda scores: temporal_ot_assignment(scores, 0.08, 1.5, video_lengths=[5, 7], distributed=False),
        (_unit(N, 6, seed=0),),
    ),
    "elo_layer_distillation": (
        layer_distillation_loss,
        (
            torch.randn(N, D, generator=torch.Generator().manual_seed(0)),
            torch.randn(N, D, generator=torch.Generator().manual_seed(1)),
        ),
    ),
    "videoqa_masked_positive": (
        lambda anchor, candidates: masked_positive_loss(
            anchor, candidates, torch.zeros(N, dtype=torch.long), 0.1
        ),
        (torch.randn(N, D, generator=torch.Generator().manual_seed(0)), _unit(N, 5, D, seed=1)),
    ),
    "mmp_conditional_cross_lingual": (
        lambda x, y, v: conditional_cross_lingual_loss(x, y, v, fusion=_concatenate, temperature=0.05),
        (_unit(N, D, seed=0), _unit(N, D, seed=1), _unit(N, D, seed=2)),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_loss_under_bf16_autocast_is_the_float32_loss_of_the_same_inputs(case):
    loss_fn, inputs = CASES[case]
    rounded = [x.bfloat16() for x in inputs]
    expected = loss_fn(*[x.float() for x in rounded])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = loss_fn(*rounded)
    assert actual.dtype == torch.float32, f"{case}: {actual.dtype}"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=lambda m: f"{case}: {m}")
