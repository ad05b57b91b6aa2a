"""DeCLUTR: MLM masking, the contrastive term against reference math, the method step, two-rank gathering,
the sentence encoder against the original README recipe, and the converters of both checkpoint layouts."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_bert
from hubserver import HubServer

import zoo
from zoo.catalog import get_entry
from zoo.convert import convert_file
from zoo.convert.declutr import ALLENNLP_PREFIX
from zoo.data.samples import collate_documents
from zoo.data.text import ByteTokenizer, train_tokenizer
from zoo.hub import UnverifiedWeightsWarning
from zoo.methods.declutr import DeCLUTR, declutr_contrastive_loss, tokenizer_mask_id, tokenizer_special_ids
from zoo.models.text import SentenceEncoder
from zoo.objectives.masked_lm import IGNORE_INDEX, mask_tokens, masked_lm_loss

transformers = pytest.importorskip("transformers")

TINY_BERT = tiny_bert()


# --- MLM masking -----------------------------------------------------------------------------------


def test_mask_tokens_picks_15_percent_of_real_tokens_and_splits_80_10_10():
    input_ids = torch.randint(10, 100, (400, 64))
    input_ids[:, 0], input_ids[:, -9] = 1, 2  # specials
    attention_mask = torch.ones_like(input_ids)
    attention_mask[:, -8:] = 0  # padding
    input_ids[:, -8:] = 0
    generator = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(
        input_ids,
        attention_mask,
        mask_token_id=5,
        vocab_size=100,
        special_token_ids=[0, 1, 2],
        generator=generator,
    )
    picked = labels != IGNORE_INDEX
    real = attention_mask.bool() & (input_ids > 2)
    assert not picked[~real].any()  # never a special token or padding
    assert picked.sum() / real.sum() == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[picked], input_ids[picked])
    assert torch.equal(masked[~picked], input_ids[~picked])  # untouched elsewhere
    to_mask = (masked[picked] == 5).float().mean()
    unchanged = (masked[picked] == input_ids[picked]).float().mean()
    assert to_mask == pytest.approx(0.8, abs=0.02)
    assert unchanged == pytest.approx(0.1 + 0.1 / 100 * 0.9, abs=0.02)  # kept, or drawn as itself


def test_masked_lm_loss_counts_picked_positions_only():
    logits = torch.randn(2, 3, 7, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 4, IGNORE_INDEX], [1, IGNORE_INDEX, IGNORE_INDEX]])
    expected = (
        F.cross_entropy(logits[0, 1:2], labels[0, 1:2]) + F.cross_entropy(logits[1, :1], labels[1, :1])
    ) / 2
    torch.testing.assert_close(masked_lm_loss(logits, labels), expected)
    none = masked_lm_loss(logits, torch.full((2, 3), IGNORE_INDEX))
    none.backward()
    assert none.item() == 0.0 and logits.grad is not None


# --- the contrastive term --------------------------------------------------------------------------


def reference_ntxent(anchors: torch.Tensor, positives: torch.Tensor, tau: float) -> torch.Tensor:
    """PML's NTXentLoss over cat(anchors, mean positive) with one label per pair, written out pair by pair."""
    e = F.normalize(torch.cat([anchors, positives.mean(1)]), dim=1)
    n = len(anchors)
    labels = list(range(n)) * 2
    sim = e @ e.T / tau
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        negatives = [sim[i, k].exp() for k in range(2 * n) if labels[k] != labels[i]]
        losses.append(-torch.log(sim[i, j].exp() / (sim[i, j].exp() + sum(negatives))))
    return torch.stack(losses).mean()


def test_contrastive_term_is_ntxent_over_anchors_and_averaged_positives():
    torch.manual_seed(0)
    anchors, positives = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 2, 8, dtype=torch.float64)
    torch.testing.assert_close(
        declutr_contrastive_loss(anchors, positives, 0.05), reference_ntxent(anchors, positives, 0.05)
    )


# --- the method --------------------------------------------------------------------------------------


def _batch(num_docs: int = 3) -> dict:
    samples = [
        {
            "anchors": [f"doc {d} anchor {a} " * 3 for a in range(2)],
            "positives": [f"doc {d} pos {k}" for k in range(4)],
            "index": d,
        }
        for d in range(num_docs)
    ]
    return collate_documents(samples, ByteTokenizer(64))


def test_step_masks_anchors_and_adds_the_mlm_loss():
    tokenizer = ByteTokenizer(64)
    assert tokenizer_mask_id(tokenizer) == 259 and tokenizer_special_ids(tokenizer) == [0, 1, 2]
    torch.manual_seed(0)
    model = DeCLUTR(encoder_kwargs={"config": TINY_BERT}, mask_token_id=259, special_token_ids=[0, 1, 2])
    batch = _batch()
    seen = []
    model.encoders["text"].transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    out = model.ssl_step(batch)
    anchors_seen = seen[0]
    assert anchors_seen.shape == batch["text"]["input_ids"].shape
    assert (anchors_seen != batch["text"]["input_ids"]).any()  # the anchors were masked before encoding
    assert torch.equal(seen[1], batch["positives"]["input_ids"])  # the positives were not
    torch.testing.assert_close(out["loss"], out["contrastive_loss"] + out["mlm_loss"])
    assert out["features"].shape == (6, 16)
    out["loss"].backward()
    assert model.lm_head.dense.weight.grad is not None
    assert model.lm_head.decoder.weight is model.encoders["text"].transformer.get_input_embeddings().weight


def test_mlm_needs_a_mask_id_inside_the_vocabulary():
    model = DeCLUTR(encoder_kwargs={"config": TINY_BERT}, mask_token_id=300, special_token_ids=[0])
    with pytest.raises(ValueError, match="outside the encoder's vocabulary"):
        model.ssl_step(_batch())


# --- sentence encoder, converters, catalog --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_declutr(tmp_path_factory) -> Path:
    """A tiny RobertaForMaskedLM with its tokenizer, saved as the Hub repositories are."""
    folder = tmp_path_factory.mktemp("declutr")
    texts = [
        "A red disc moves to the left.",
        "A blue square spins slowly.",
        "Ein roter Kreis bewegt sich.",
    ] * 20
    tokenizer_file = train_tokenizer(texts, folder / "bpe", vocab_size=300, min_frequency=1)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=64,
    )
    tokenizer.save_pretrained(folder)
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=70,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = transformers.RobertaForMaskedLM(config)
    model.save_pretrained(folder)  # config.json (and model.safetensors)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the Hub repositories' file
    return folder


def readme_embeddings(folder: Path, texts: list[str]) -> torch.Tensor:
    """The original README recipe: AutoModel + mean over the attention mask."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        sequence_output = model(**inputs)[0]
    mask = inputs["attention_mask"].unsqueeze(-1)
    return torch.sum(sequence_output * mask, dim=1) / torch.clamp(torch.sum(mask, dim=1), min=1e-9)


def _encoder_args(folder: Path) -> dict:
    config = transformers.AutoConfig.from_pretrained(folder).to_dict()
    keep = (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "pad_token_id",
        "type_vocab_size",
        "layer_norm_eps",
    )
    return {"config": {"model_type": "roberta", **{k: config[k] for k in keep}}, "tokenizer": str(folder)}


TEXTS = [
    "A red disc moves to the left.",
    "A blue square spins.",
    "Ein roter Kreis bewegt sich nach links und rechts.",
]


@pytest.mark.parametrize("layout", ["declutr-hf", "declutr-allennlp"])
def test_converted_checkpoint_encodes_like_the_readme_recipe(tiny_declutr, tmp_path, layout):
    raw = torch.load(tiny_declutr / "pytorch_model.bin", weights_only=True)
    assert any(k.startswith("lm_head.") for k in raw)
    source = tiny_declutr / "pytorch_model.bin"
    if layout == "declutr-allennlp":
        source = tmp_path / "weights.th"
        torch.save({ALLENNLP_PREFIX + k: v for k, v in raw.items()}, source)
    state = convert_file(layout, source)
    encoder = SentenceEncoder(**_encoder_args(tiny_declutr))
    encoder.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        encoder.eval().encode(TEXTS, batch_size=2), readme_embeddings(tiny_declutr, TEXTS)
    )


def test_converter_names_keys_of_no_encoder(tmp_path):
    path = tmp_path / "other.bin"
    torch.save(
        {"roberta.embeddings.word_embeddings.weight": torch.zeros(2, 2), "classifier.weight": torch.zeros(2)},
        path,
    )
    with pytest.raises(Exception, match=r"classifier\.weight"):
        convert_file("declutr-hf", path)


def test_zoo_load_gives_an_encoder_with_encode(tiny_declutr, make_catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    with HubServer() as server:
        url = server.add_file("pytorch_model.bin", (tiny_declutr / "pytorch_model.bin").read_bytes())
        make_catalog(
            {
                "declutr-tiny": {
                    "arch": "sentence_encoder",
                    "arch_args": _encoder_args(tiny_declutr),
                    "weights": [{"url": {"url": url, "format": "declutr-hf"}}],
                    "preprocess": {"modality": "text"},
                }
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedWeightsWarning)
            model = zoo.load("declutr-tiny")
    torch.testing.assert_close(model.encode(TEXTS), readme_embeddings(tiny_declutr, TEXTS))


def test_catalog_entries_build_the_published_architectures():
    for name, layers in [("declutr-small", 6), ("declutr-base", 12), ("declutr-sci-base", 12)]:
        entry = get_entry(name)
        assert entry.arch == "sentence_encoder" and entry.weights[0].format == "declutr-hf"
        assert entry.arch_args["config"]["num_hidden_layers"] == layers
        assert entry.arch_args["tokenizer"] == f"johngiorgi/{name}"
    assert math.isclose(get_entry("declutr-small").metrics.paper[0].value, 77.50)
