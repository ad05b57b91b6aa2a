"""Text encoder over transformers: pooling over the attention mask, building from a config or a local
folder (no network), the missing-extra error."""

from __future__ import annotations

import sys

import pytest
import torch

from zoo import registry
from zoo.errors import UsageError
from zoo.models.text import MissingExtraError, TextEncoder, masked_pool

TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 100,
}


def test_masked_pooling():
    tokens = torch.tensor([[[1.0, 5.0], [3.0, -1.0], [100.0, 100.0]]])  # (1, 3, 2), last token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(masked_pool(tokens, mask, "mean"), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(masked_pool(tokens, mask, "max"), torch.tensor([[3.0, 5.0]]))
    assert torch.equal(masked_pool(tokens, mask, "cls"), torch.tensor([[1.0, 5.0]]))
    assert torch.equal(masked_pool(tokens, None, "max"), torch.tensor([[100.0, 100.0]]))


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_padding_does_not_change_the_embedding(pooling):
    torch.manual_seed(0)
    model = registry.build("text_encoder", config=TINY_BERT, pooling=pooling).eval()
    ids = torch.randint(1, 100, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    with torch.no_grad():
        short = model(ids)
        long = model({"input_ids": padded, "attention_mask": mask})
    assert short.shape == (1, 32) and model.num_features == 32
    assert torch.allclose(short, long, atol=1e-5)


def test_classifier_and_token_features():
    torch.manual_seed(0)
    model = TextEncoder(config=TINY_BERT, num_classes=4).eval()
    ids = torch.randint(1, 100, (2, 6))
    with torch.no_grad():
        assert model.token_features(ids).shape == (2, 6, 32)
        pooled = model.forward_head(model.forward_features(ids), pre_logits=True)
        assert torch.allclose(model(ids), model.fc(pooled))


def test_from_a_local_folder(tmp_path):
    torch.manual_seed(0)
    source = TextEncoder(config=TINY_BERT).eval()
    source.transformer.save_pretrained(tmp_path / "tiny-bert")
    loaded = registry.build(
        "text_encoder", model_name_or_path=str(tmp_path / "tiny-bert"), local_files_only=True
    )
    ids = torch.randint(1, 100, (2, 6))
    with torch.no_grad():
        assert torch.allclose(source(ids), loaded.eval()(ids), atol=1e-6)


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="exactly one"):
        TextEncoder()
    with pytest.raises(UsageError, match="model_type"):
        TextEncoder(config={"hidden_size": 32})
    with pytest.raises(UsageError, match="pooling"):
        TextEncoder(config=TINY_BERT, pooling="sum")


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(MissingExtraError, match=r"zoo\[text\]"):
        TextEncoder(config=TINY_BERT)
    assert issubclass(MissingExtraError, UsageError)
