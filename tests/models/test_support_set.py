"""Support-set attention (four variants, against loops of the equations) and the caption decoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.models.support_set import CaptionDecoder, SupportSetAttention, caption_loss


def _reference(attention: SupportSetAttention, queries: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
    """v̄_i by explicit sums over j: a_ij = softmax_j(⟨q(e_i), k(v_j)⟩/√d), v̄_i = Σ_j a_ij val(v_j)."""
    d = queries.shape[1]
    out = []
    for i in range(len(queries)):
        q = attention.query(queries[i])
        allowed = {
            "identity": [i],
            "full": list(range(len(visual))),
            "cross": [j for j in range(len(visual)) if j != i],
        }
        parts = {}
        for name, members in allowed.items():
            scores = torch.stack([q @ attention.key(visual[j]) / math.sqrt(d) for j in members])
            weights = scores.softmax(dim=0)
            parts[name] = sum(w * attention.value(visual[j]) for w, j in zip(weights, members))
        if attention.variant == "hybrid":
            h = attention.hybrid_weight
            out.append(h * parts["identity"] + (1 - h) * parts["cross"])
        else:
            out.append(parts[attention.variant])
    return torch.stack(out)


@pytest.mark.parametrize("variant", ["identity", "full", "cross", "hybrid"])
def test_attention_matches_the_equations(variant):
    torch.manual_seed(0)
    attention = SupportSetAttention(8, variant, hybrid_weight=0.3)
    queries, visual = torch.randn(5, 8), torch.randn(5, 8)
    attended, weights = attention(queries, visual)
    torch.testing.assert_close(attended, _reference(attention, queries, visual), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(5))


def test_cross_attention_never_looks_at_the_sample_itself():
    torch.manual_seed(0)
    attention = SupportSetAttention(4, "cross")
    visual = torch.randn(6, 4, requires_grad=True)
    attended, weights = attention(visual.detach(), visual)
    assert torch.all(weights.diagonal() == 0)
    attended[2].sum().backward()  # sample 2's v̄ carries no gradient to its own visual representation
    assert torch.all(visual.grad[2] == 0) and visual.grad[[0, 1, 3, 4, 5]].abs().sum() > 0


def test_attention_rejects_a_one_sample_support_set_and_unknown_variants():
    with pytest.raises(ValueError, match="at least 2 samples"):
        SupportSetAttention(4, "cross")(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="variant"):
        SupportSetAttention(4, "nearest")


@pytest.mark.parametrize("conditioning", ["prefix", "memory"])
def test_decoder_is_causal_and_reads_its_context(conditioning):
    torch.manual_seed(0)
    decoder = CaptionDecoder(
        20, dim=16, depth=2, num_heads=2, max_length=10, conditioning=conditioning
    ).eval()
    context, ids = torch.randn(2, 16), torch.randint(0, 20, (2, 7))
    logits = decoder(context, ids)
    assert logits.shape == (2, 7, 20)
    changed = ids.clone()
    changed[:, 4:] = (ids[:, 4:] + 1) % 20  # later tokens never change earlier predictions
    torch.testing.assert_close(decoder(context, changed)[:, :4], logits[:, :4], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(decoder(torch.randn(2, 16), ids)[:, 0], logits[:, 0])  # the context matters
    with pytest.raises(ValueError, match="max_length"):
        decoder(context, torch.zeros(2, 11, dtype=torch.long))


def test_caption_loss_is_the_mean_cross_entropy_of_the_next_real_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.tensor([[1, 4, 5, 2, 0], [1, 3, 2, 0, 0]])
    mask = (ids != 0).long()
    terms = [
        -F.log_softmax(logits[b, w], dim=-1)[ids[b, w + 1]]
        for b in range(2)
        for w in range(4)
        if mask[b, w + 1]
    ]
    torch.testing.assert_close(caption_loss(logits, ids, mask), torch.stack(terms).mean())
