"""Transformer pooling head: shapes, padding never reaches the output, positions bound, bad settings."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import UsageError
from zoo.models.transformer_pooling import MaskedTransformerPooling


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padded_tokens_do_not_change_the_embedding(pooling):
    torch.manual_seed(0)
    head = MaskedTransformerPooling(12, out_dim=8, width=16, depth=2, num_heads=2, pooling=pooling).eval()
    tokens = torch.randn(3, 5, 12)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    out = head(tokens, mask)
    assert out.shape == (3, 8)
    garbage = tokens.clone()
    garbage[mask == 0] = 1e3  # padding holds anything
    torch.testing.assert_close(head(garbage, mask), out)
    # the same as the real tokens alone
    torch.testing.assert_close(head(tokens[:1, :3]), out[:1], atol=1e-5, rtol=1e-5)


def test_without_positions_the_tokens_are_a_set_and_with_them_an_order():
    torch.manual_seed(0)
    tokens = torch.randn(2, 6, 4)
    order = torch.randperm(6)
    as_set = MaskedTransformerPooling(4, out_dim=4, width=8, num_heads=2).eval()
    torch.testing.assert_close(as_set(tokens[:, order]), as_set(tokens), atol=1e-5, rtol=1e-5)
    ordered = MaskedTransformerPooling(4, out_dim=4, width=8, num_heads=2, max_positions=6).eval()
    assert not torch.allclose(ordered(tokens[:, order]), ordered(tokens), atol=1e-4)


def test_gradients_reach_every_parameter():
    head = MaskedTransformerPooling(4, out_dim=4, width=8, num_heads=2, max_positions=3)
    head(torch.randn(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]])).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_more_tokens_than_positions_is_a_clear_error():
    head = MaskedTransformerPooling(4, out_dim=4, width=8, num_heads=2, max_positions=3)
    with pytest.raises(UsageError, match="4 tokens but has 3 positions"):
        head(torch.randn(1, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"pooling": "max"}, "pooling must be"), ({"width": 10, "num_heads": 4}, "not divisible")],
)
def test_bad_settings_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        MaskedTransformerPooling(4, **kwargs)
