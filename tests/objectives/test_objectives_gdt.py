"""The GDT loss against plain reference math: positives, hard negatives, other-rank negatives, averaging."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import run_ranks

from zoo.objectives.gdt import HYPOTHESES, GDTPair, gdt_hypothesis_loss, gdt_pair_loss

N, D, T = 5, 6, 0.07


def _pair(seed: int, n: int = N) -> GDTPair:
    g = torch.Generator().manual_seed(seed)
    return GDTPair(
        F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=1),
        F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=1),
    )


def _row_loss(q: torch.Tensor, positive: torch.Tensor, negatives: list[torch.Tensor]) -> float:
    """-log softmax of the positive among the positive and the negatives, one row, by hand."""
    scores = [float(q @ positive) / T] + [float(q @ n) / T for n in negatives]
    return -(scores[0] - math.log(sum(math.exp(s) for s in scores)))


def _reference_term(q, keys, i, extra):
    """Row i: positive keys[i]; negatives the other local keys and ``extra`` rows."""
    others = [keys[j] for j in range(len(keys)) if j != i] + list(extra)
    return _row_loss(q[i], keys[i], others)


def _reference_pair(p, t, relation, remote=()):
    terms = []
    sets = [p] if t is None else [p, t]
    for s, (v, a) in enumerate(sets):
        o = sets[1 - s] if t is not None else None
        key_v, key_a = (o.audio, o.video) if relation == "invariant" else (a, v)
        extra_v = [r.audio[j] for r in remote for j in range(len(r.audio))]
        extra_a = [r.video[j] for r in remote for j in range(len(r.video))]
        if relation == "variant":
            extra_v += list(o.audio)
            extra_a += list(o.video)
        terms.append(sum(_reference_term(v, key_v, i, extra_v) for i in range(len(v))) / len(v))
        terms.append(sum(_reference_term(a, key_a, i, extra_a) for i in range(len(a))) / len(a))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("relation", ["basecase", "invariant", "variant"])
def test_pair_loss_matches_the_reference_math(relation):
    p, t, remote = _pair(0), _pair(1), (_pair(2, 3), _pair(3, 3))
    ours = gdt_pair_loss(p, t, relation, T, remote)
    assert ours.item() == pytest.approx(_reference_pair(p, t, relation, remote), abs=1e-9)


def test_baseline_pair_has_two_terms_and_local_negatives_only():
    p = _pair(0)
    assert gdt_pair_loss(p, None, "basecase", T).item() == pytest.approx(_reference_pair(p, None, "basecase"))
    with pytest.raises(ValueError, match="invariant relation needs"):
        gdt_pair_loss(p, None, "invariant", T)


def test_variant_hard_negatives_raise_the_loss_invariant_positives_change_it():
    p = _pair(0)
    same = GDTPair(p.video.clone(), p.audio.clone())  # a transformation that changed nothing
    base = gdt_pair_loss(p, same, "basecase", T)
    # identical hard negatives score like the positive: the variant loss grows by about log 2
    assert gdt_pair_loss(p, same, "variant", T) > base + 0.5
    # with an identical transformed copy the invariant positives are the basecase ones
    torch.testing.assert_close(gdt_pair_loss(p, same, "invariant", T), base)


def test_gradients_flow_through_the_queries_only():
    v = _pair(0).video.requires_grad_()
    a = _pair(1).audio.requires_grad_()
    gdt_pair_loss(GDTPair(v, a), None, "basecase", T).backward()
    # d/dv of the a→v term would need v as a key; only the v→a term (v as query) reaches v
    v2 = v.detach().clone().requires_grad_()
    half = 0.5 * F.cross_entropy(v2 @ a.detach().T / T, torch.arange(N))
    half.backward()
    torch.testing.assert_close(v.grad, v2.grad)


def _views():
    return {name: _pair(i) for i, name in enumerate(["clip", "reversed", "shifted", "shifted_reversed"])}


@pytest.mark.parametrize("hypothesis", range(1, 10))
def test_hypotheses_average_their_pair_losses_as_the_original(hypothesis):
    views = _views()
    rev, shift = HYPOTHESES[hypothesis]
    pair = lambda a, b, r: _reference_pair(views[a], views[b] if b else None, r)  # noqa: E731
    if hypothesis == 1:
        expected = pair("clip", None, "basecase")
    elif shift == "none" or rev == "none":
        relation, other = (rev, "reversed") if shift == "none" else (shift, "shifted")
        loss1 = pair("clip", other, relation)
        expected = 0.5 * (loss1 + pair("clip", other, "basecase")) if relation == "invariant" else loss1
    else:
        terms = [
            pair("clip", "reversed", rev),
            pair("shifted", "shifted_reversed", rev),
            pair("clip", "shifted", shift),
            pair("reversed", "shifted_reversed", shift),
        ]
        terms += [pair("clip", "reversed", "basecase")] if rev == "invariant" else []
        terms += [pair("clip", "shifted", "basecase")] if shift == "invariant" else []
        expected = sum(terms) / len(terms)  # 1/4, 1/5 or 1/6 of the sum, as main_gdt.py
    ours = gdt_hypothesis_loss(views, rev, shift, T, gather=True)
    assert ours.item() == pytest.approx(expected, abs=1e-9)


def test_missing_views_are_named():
    with pytest.raises(ValueError, match="shifted"):
        gdt_hypothesis_loss({"clip": _pair(0)}, "none", "variant", T)


def _ddp_worker(rank: int, world: int) -> None:
    per_rank = [{n: _pair(10 * r + i) for i, n in enumerate(["clip", "shifted"])} for r in range(world)]
    mine = per_rank[rank]
    loss = gdt_hypothesis_loss(mine, "none", "invariant", T, gather=True)
    remote_clip = tuple(per_rank[r]["clip"] for r in range(world) if r != rank)
    remote_shift = tuple(per_rank[r]["shifted"] for r in range(world) if r != rank)
    # the negatives of a pair loss: every other rank's rows of both of its transformations
    remote = tuple(
        GDTPair(torch.cat([c.video, s.video]), torch.cat([c.audio, s.audio]))
        for c, s in zip(remote_clip, remote_shift)
    )
    inv = _reference_pair(mine["clip"], mine["shifted"], "invariant", remote)
    base = _reference_pair(mine["clip"], mine["shifted"], "basecase", remote)
    assert loss.item() == pytest.approx(0.5 * (inv + base), abs=1e-9)


def test_other_ranks_features_are_negatives_under_ddp():
    run_ranks(_ddp_worker, 2, world=2)


def _uneven_worker(rank: int, world: int) -> None:
    from zoo.objectives.gdt import other_ranks

    rows = torch.arange(2 + rank, dtype=torch.float64)[:, None] + 10 * rank  # rank 0: 2 rows, rank 1: 3 rows
    expected = {0: [[10.0], [11.0], [12.0]], 1: [[0.0], [1.0]]}[rank]
    assert other_ranks(rows).tolist() == expected


def test_other_ranks_with_uneven_batches():
    """Ranks that dropped different numbers of samples (no audio) still exchange their negatives."""
    run_ranks(_uneven_worker, 2, world=2)
