"""Text: tokenizers by name (bytes, tokenizers file, transformers folder, Hub id offline), training one on
SynthMotion's captions in five languages, and captions -> batch layouts (several per video, languages)."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import generate_synth, tiny_synth
from torch.utils.data import DataLoader

from zoo.data.synthmotion import LANGUAGES
from zoo.data.text import (
    ByteTokenizer,
    HFTokenizer,
    MissingTextPackageError,
    TokenizerNotFoundError,
    TokenizersTokenizer,
    build_tokenizer,
    read_caption_texts,
    train_tokenizer,
)
from zoo.data.text_collate import CaptionCollate, select_captions, tokenize_captions
from zoo.errors import UsageError

# one caption per language, none of them in the training text
SAMPLES = {
    "en": "An orange ring bounces quickly up and down.",
    "de": "Eine weiße Scheibe kreist gegen den Uhrzeigersinn.",
    "fr": "Dans la vidéo, une croix verte rebondit rapidement de gauche à droite.",
    "es": "Un triángulo morado se mueve despacio hacia la izquierda.",
    "zh": "视频里，一个青色的菱形沿逆时针方向转圈。",
}


@pytest.fixture(scope="module")
def synth_captions(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """SynthMotion's captions.json: 16 clips x 5 languages x 2 captions."""
    synth = tiny_synth(size=16, num_frames=2, train_per_class=2, val_per_class=0, test_per_class=0)
    root = generate_synth(tmp_path_factory.mktemp("synth"), synth)
    return json.loads((root / "captions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bpe_file(synth_captions: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [item["caption"] for item in synth_captions]
    return train_tokenizer(texts, tmp_path_factory.mktemp("bpe"), vocab_size=500)


@pytest.fixture(scope="module")
def hf_folder(bpe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained BPE saved as a transformers tokenizer folder (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(bpe_file)),
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    folder = tmp_path_factory.mktemp("hf") / "tiny-tokenizer"
    fast.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------
# Byte-level


def test_bytes_pads_to_the_longest_and_round_trips_every_language():
    tokenizer = build_tokenizer("bytes", max_length=256)
    texts = list(SAMPLES.values())
    batch = tokenizer(texts)
    lengths = [len(text.encode("utf-8")) + 2 for text in texts]
    assert batch["input_ids"].shape == (5, max(lengths)) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_id).all()
    assert batch["input_ids"][:, 0].eq(ByteTokenizer.BOS).all()
    assert int(batch["input_ids"].max()) < tokenizer.vocab_size == 259
    assert [tokenizer.decode(row) for row in batch["input_ids"]] == texts


def test_bytes_truncates_at_a_character_boundary_and_keeps_eos():
    tokenizer = build_tokenizer("bytes", max_length=12)
    ids = tokenizer.encode_batch([SAMPLES["zh"]])[0]  # 3 bytes per character: 10 bytes fit, 9 are kept
    assert len(ids) == 11 and ids[0] == ByteTokenizer.BOS and ids[-1] == ByteTokenizer.EOS
    assert tokenizer.decode(ids) == SAMPLES["zh"][:3]
    assert tokenizer(["a" * 50, "b"])["input_ids"].shape == (2, 12)


def test_bytes_needs_neither_tokenizers_nor_transformers(monkeypatch, bpe_file):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` now raises ImportError
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert build_tokenizer("bytes")(["ok"])["input_ids"].tolist() == [[1, ord("o") + 3, ord("k") + 3, 2]]
    with pytest.raises(MissingTextPackageError, match=r'tokenizer.json.*pip install "zoo\[text\]"'):
        build_tokenizer(str(bpe_file))
    with pytest.raises(MissingTextPackageError, match=r"transformers package"):
        build_tokenizer("someone/some-tokenizer")


# ----------------------------------------------------------------------------------------------------------
# Tokenizers trained on SynthMotion's captions


def test_read_caption_texts_reads_synthmotion_captions_by_language(synth_captions, tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(synth_captions, ensure_ascii=False), encoding="utf-8")
    texts = read_caption_texts(path)
    assert len(texts) == 16 * 5 * 2 and texts[0] == synth_captions[0]["caption"]
    assert {item["lang"] for item in synth_captions} == set(LANGUAGES)
    german = read_caption_texts(path, languages=["de"])
    assert (
        german == [item["caption"] for item in synth_captions if item["lang"] == "de"] and len(german) == 32
    )


def test_read_caption_texts_other_formats_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("path,caption\nx.mp4,hello\ny.mp4,\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"text": "t1"}\n{"caption": "t2"}\n', encoding="utf-8")
    (tmp_path / "d.json").write_text('{"sentences": [{"video_id": "v", "caption": "msr"}]}', encoding="utf-8")
    assert read_caption_texts(tmp_path / "a.txt") == ["one", "two"]
    assert read_caption_texts(tmp_path / "b.csv") == ["hello"]
    assert read_caption_texts(tmp_path / "c.jsonl") == ["t1", "t2"]
    assert read_caption_texts(tmp_path / "d.json") == ["msr"]
    (tmp_path / "e.json").write_text('[{"video_id": "v"}]', encoding="utf-8")
    with pytest.raises(UsageError, match=r"e\.json.*item 0 has no 'caption'"):
        read_caption_texts(tmp_path / "e.json")
    (tmp_path / "f.jsonl").write_text('{"text": "t1"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"f\.jsonl' is not valid JSON"):
        read_caption_texts(tmp_path / "f.jsonl")
    (tmp_path / "g.xml").write_text("<captions/>", encoding="utf-8")
    with pytest.raises(UsageError, match=r"g\.xml'.*\.txt, \.csv, \.json or \.jsonl"):
        read_caption_texts(tmp_path / "g.xml")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        read_caption_texts(tmp_path / "missing.txt")


def test_trained_byte_level_bpe_round_trips_five_languages(bpe_file, synth_captions):
    tokenizer = build_tokenizer(str(bpe_file))
    assert isinstance(tokenizer, TokenizersTokenizer) and tokenizer.vocab_size <= 500
    texts = [item["caption"] for item in synth_captions] + list(SAMPLES.values()) + ["Ünïcödé ✓ 😀 ąę"]
    batch = tokenizer(texts)
    assert int(batch["input_ids"].max()) < tokenizer.vocab_size
    unk = tokenizer.tokenizer.token_to_id("<unk>")
    assert not (batch["input_ids"] == unk).any()
    for text, ids, mask in zip(texts, batch["input_ids"], batch["attention_mask"]):
        assert tokenizer.decode(ids[mask.bool()]) == text
    # learned merges: the training languages take far fewer ids than bytes
    trained = sum(len(ids) for ids in tokenizer.encode_batch(list(SAMPLES.values())))
    assert trained < 0.5 * sum(len(text.encode("utf-8")) for text in SAMPLES.values())


@pytest.mark.parametrize(
    ("kind", "bos", "eos", "unk"),
    [("wordpiece", "[CLS]", "[SEP]", "[UNK]"), ("unigram", "<s>", "</s>", "<unk>")],
)
def test_trained_wordpiece_and_unigram_encode_without_unknowns(synth_captions, tmp_path, kind, bos, eos, unk):
    texts = [item["caption"] for item in synth_captions]
    path = train_tokenizer(texts, tmp_path / f"{kind}.json", vocab_size=400, kind=kind)
    assert path == tmp_path / f"{kind}.json"
    tokenizer = build_tokenizer(str(path))
    vocab = tokenizer.tokenizer
    batch = tokenizer(texts)  # (unlike byte-level BPE, an unseen character would be unknown)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert int(ids.max()) < tokenizer.vocab_size and tokenizer.pad_id == 0
    assert not (ids == vocab.token_to_id(unk)).any()
    assert ids[:, 0].eq(vocab.token_to_id(bos)).all()
    last = mask.sum(1) - 1
    assert ids[torch.arange(len(ids)), last].eq(vocab.token_to_id(eos)).all()
    if kind == "unigram":  # Metaspace: exact round trip
        assert tokenizer.decode(ids[0][mask[0].bool()]) == texts[0]


def test_train_tokenizer_writes_only_the_file_and_checks_arguments(tmp_path):
    path = train_tokenizer(["a b c", "a b"] * 5, tmp_path / "out", vocab_size=300)
    assert path == tmp_path / "out" / "tokenizer.json"
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temporary file left
    assert json.loads(path.read_text())["padding"]["pad_token"] == "<pad>"
    with pytest.raises(UsageError, match="kind must be one of bpe, unigram, wordpiece"):
        train_tokenizer(["a"], tmp_path / "x", kind="sentencepiece")
    with pytest.raises(UsageError, match="vocab_size"):
        train_tokenizer(["a"], tmp_path / "x", vocab_size=5)


def test_truncation_keeps_the_special_tokens(bpe_file):
    tokenizer = build_tokenizer({"name": str(bpe_file), "max_length": 6})
    ids = tokenizer([SAMPLES["fr"], "a"])["input_ids"]
    assert ids.shape == (2, 6) and ids[0, 0] == 1 and ids[0, -1] == 2


# ----------------------------------------------------------------------------------------------------------
# transformers: a local folder, a cached Hub id, and one that cannot be found offline


def test_transformers_folder_gives_the_same_ids_as_the_tokenizers_file(hf_folder, bpe_file):
    from_folder, from_file = build_tokenizer(str(hf_folder)), build_tokenizer(str(bpe_file))
    assert isinstance(from_folder, HFTokenizer)
    texts = list(SAMPLES.values())
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(from_folder(texts)[key], from_file(texts)[key])
    assert (from_folder.vocab_size, from_folder.pad_id) == (from_file.vocab_size, from_file.pad_id)


def test_cached_hub_id_loads_offline(hf_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo, commit = tmp_path / "hf" / "hub" / "models--someone--tiny-tokenizer", "0" * 40
    shutil.copytree(hf_folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / ".no_exist" / commit).mkdir(parents=True)  # what huggingface_hub records for a missing file
    (repo / ".no_exist" / commit / "config.json").touch()
    tokenizer = build_tokenizer("someone/tiny-tokenizer")
    assert isinstance(tokenizer, HFTokenizer)
    assert torch.equal(
        tokenizer([SAMPLES["es"]])["input_ids"], build_tokenizer(str(hf_folder))([SAMPLES["es"]])["input_ids"]
    )


def test_uncached_hub_id_offline_says_what_to_pass_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TokenizerNotFoundError) as caught:
        build_tokenizer("nobody-here/no-such-tokenizer")
    message = str(caught.value)
    assert "\n" not in message and isinstance(caught.value, UsageError)
    assert "'nobody-here/no-such-tokenizer'" in message and "offline" in message
    assert "local tokenizer folder" in message and "'bytes'" in message and "zoo data tokenizer" in message


def test_missing_paths_and_bad_specs_are_usage_errors(tmp_path):
    with pytest.raises(TokenizerNotFoundError, match="no such file or folder"):
        build_tokenizer(str(tmp_path / "nothing" / "tokenizer.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerNotFoundError, match=r"neither tokenizer\.json nor tokenizer_config\.json"):
        build_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="unknown field 'maxlen'"):
        build_tokenizer({"name": "bytes", "maxlen": 8})
    with pytest.raises(UsageError, match="max_length must be an integer >= 2"):
        build_tokenizer("bytes", max_length=1)
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(UsageError, match=r"broken\.json.*not a tokenizers file"):
        build_tokenizer(str(tmp_path / "broken.json"))
    assert build_tokenizer({"name": "bytes", "max_length": 8}).max_length == 8


def test_every_kind_pickles_for_dataloader_workers(bpe_file, hf_folder):
    texts = [SAMPLES["de"], SAMPLES["zh"]]
    for spec in ("bytes", str(bpe_file), str(hf_folder)):
        tokenizer = build_tokenizer(spec, max_length=8)
        copy = pickle.loads(pickle.dumps(tokenizer))
        assert copy(texts)["input_ids"].shape == (2, 8)  # truncation survives the copy
        assert torch.equal(copy(texts)["input_ids"], tokenizer(texts)["input_ids"])
        assert repr(copy) == repr(tokenizer)


# ----------------------------------------------------------------------------------------------------------
# tokenize / detokenize: the model's tokens as pieces of the text (DeCLUTR's span sampler counts in them)


def _kinds(bpe_file, hf_folder, tmp_path) -> dict:
    """Every kind of tokenizer, none truncating at 512 (specials included)."""
    texts = [text for text in SAMPLES.values()] * 4
    trained = {
        kind: train_tokenizer(texts, tmp_path / kind, vocab_size=120, kind=kind)
        for kind in ("wordpiece", "unigram")
    }
    specs = {"bytes": "bytes", "bpe": bpe_file, "transformers": hf_folder, **trained}
    return {kind: build_tokenizer(str(spec), max_length=512) for kind, spec in specs.items()}


def test_tokenize_gives_one_piece_per_model_token_covering_the_text(bpe_file, hf_folder, tmp_path):
    for kind, tokenizer in _kinds(bpe_file, hf_folder, tmp_path).items():
        for lang, text in SAMPLES.items():
            pieces = tokenizer.tokenize(text)
            ids = tokenizer.encode_batch([text])[0]
            assert len(pieces) == len(ids) - 2, (kind, lang)  # the encoding's tokens, bos and eos aside
            assert "".join(pieces) == text, (kind, lang)
            assert tokenizer.detokenize(pieces) == text


def test_tokenize_does_not_truncate(bpe_file, hf_folder):
    text = " ".join(SAMPLES.values())
    for spec in ("bytes", str(bpe_file), str(hf_folder)):
        tokenizer = build_tokenizer(spec, max_length=8)
        assert len(tokenizer.tokenize(text)) > 40 and len(tokenizer([text])["input_ids"][0]) == 8


def test_bytes_tokens_are_utf8_bytes_and_never_cut_a_character():
    tokenizer = ByteTokenizer()
    assert tokenizer.tokenize("视a é") == ["", "", "视", "a", " ", "", "é"]
    assert tokenizer.detokenize(tokenizer.tokenize(" 视a é ")[1:4]) == "视"
    assert tokenizer.detokenize(["", "é", " "]) == "é"


def test_runs_of_pieces_detokenize_to_the_text_they_cover(bpe_file, hf_folder, tmp_path):
    rng = np.random.default_rng(0)
    for kind, tokenizer in _kinds(bpe_file, hf_folder, tmp_path).items():
        for text in SAMPLES.values():
            pieces = tokenizer.tokenize(text)
            for _ in range(10):
                begin = int(rng.integers(len(pieces)))
                end = int(rng.integers(begin + 1, len(pieces) + 1))
                span = tokenizer.detokenize(pieces[begin:end])
                assert span == "".join(pieces[begin:end]).strip() and span in text, kind


def test_a_tokenizer_without_offsets_cannot_split_a_text(hf_folder):
    tokenizer = build_tokenizer(str(hf_folder))
    tokenizer.tokenizer = SimpleNamespace(is_fast=False)  # a Python-backend tokenizer reports no offsets
    with pytest.raises(UsageError, match=r"tiny-tokenizer' gives no character offsets"):
        tokenizer.tokenize("a red disc")


# ----------------------------------------------------------------------------------------------------------
# Captions -> batch layouts

VIDEOS = [
    {"en": ["en0 a", "en0 b"], "de": ["de0 a", "de0 b"], "zh": "zh0"},
    {"en": "en1", "fr": ["fr1 a", "fr1 b", "fr1 c"]},
]


def _decoded(tokenizer, text):
    ids, mask = text["input_ids"], text["attention_mask"]
    rows = [tokenizer.decode(r[m.bool()]) for r, m in zip(ids.flatten(0, -2), mask.flatten(0, -2))]
    return np.array(rows, dtype=object).reshape(ids.shape[:-1]).tolist()


def test_one_caption_per_video_is_b_by_l():
    tokenizer = ByteTokenizer()
    batch = tokenize_captions(["a red disc", ["two", "captions"], {"en": "x"}], tokenizer)
    assert batch.keys() == {"text"} and batch["text"]["input_ids"].shape == (3, 12)
    assert _decoded(tokenizer, batch["text"]) == ["a red disc", "two", "x"]


def test_k_captions_per_video_interleave_languages_without_a_generator():
    tokenizer = ByteTokenizer()
    batch = tokenize_captions(VIDEOS, tokenizer, captions_per_video=3, languages=["de", "en", "fr"])
    assert batch["text"]["input_ids"].shape[:2] == (2, 3)
    assert batch["text"]["attention_mask"].shape == batch["text"]["input_ids"].shape
    # video 0 has no French, video 1 no German: caption-major across the languages it has
    assert _decoded(tokenizer, batch["text"]) == [["de0 a", "en0 a", "de0 b"], ["en1", "fr1 a", "fr1 b"]]
    assert batch["text_language"].tolist() == [[0, 1, 0], [1, 2, 2]]


def test_all_captions_flatten_with_caption_to_video_and_languages():
    tokenizer = ByteTokenizer()
    batch = tokenize_captions(VIDEOS, tokenizer, captions_per_video="all", languages=list(LANGUAGES))
    assert batch["caption_to_video"].tolist() == [0] * 5 + [1] * 4
    assert _decoded(tokenizer, batch["text"]) == [
        *["en0 a", "de0 a", "zh0", "en0 b", "de0 b"],
        *["en1", "fr1 a", "fr1 b", "fr1 c"],
    ]
    assert [LANGUAGES[i] for i in batch["text_language"].tolist()] == [
        *["en", "de", "zh", "en", "de"],
        *["en", "fr", "fr", "fr"],
    ]
    pooled = tokenize_captions(VIDEOS, tokenizer, captions_per_video="all")
    assert "text_language" not in pooled and pooled["text"]["input_ids"].shape[0] == 9


def test_fewer_captions_than_k_repeat_evenly_and_draws_follow_the_generator():
    tokenizer = ByteTokenizer()
    captions = [["p", "q"], {"en": ["u", "v", "w"], "de": "x"}]
    batch = tokenize_captions(captions, tokenizer, captions_per_video=5, rng=np.random.default_rng(0))
    first, second = _decoded(tokenizer, batch["text"])
    assert sorted(Counter(first).values()) == [2, 3]
    assert sorted(Counter(second).values()) == [1, 1, 1, 2]
    draws = {
        tuple(
            _decoded(
                tokenizer, tokenize_captions(captions, tokenizer, 2, rng=np.random.default_rng(s))["text"]
            )[1]
        )
        for s in range(20)
    }
    assert len(draws) > 3
    same = [
        tokenize_captions(captions, tokenizer, 2, rng=[np.random.default_rng(7)] * 2)["text"]["input_ids"]
        for _ in range(2)
    ]
    assert torch.equal(*same)


def test_selected_captions_are_kept_whole_at_collate_time():
    rng = np.random.default_rng(1)
    languages = ["fr", "en"]
    selected = [select_captions(video, 2, languages, rng) for video in VIDEOS]
    assert all(sum(len(v) for v in s.values()) == 2 and set(s) <= set(languages) for s in selected)
    batch = tokenize_captions(selected, ByteTokenizer(), 2, languages)
    decoded = _decoded(ByteTokenizer(), batch["text"])
    for video, chosen in zip(decoded, selected):
        assert Counter(video) == Counter(text for texts in chosen.values() for text in texts)
    assert select_captions(["a", "b", "c"], 2) == ["a", "b"]


def test_caption_errors_name_the_video():
    tokenizer = ByteTokenizer()
    with pytest.raises(
        UsageError, match=r"video 1 of the batch: languages=\['en'\] needs captions keyed by language"
    ):
        tokenize_captions([{"en": "a"}, "plain"], tokenizer, languages=["en"])
    with pytest.raises(UsageError, match="video 0 of the batch has no captions in es"):
        tokenize_captions([{"en": "a"}], tokenizer, languages=["es"])
    with pytest.raises(UsageError, match="captions_per_video must be an integer >= 1 or 'all'"):
        tokenize_captions(["a"], tokenizer, captions_per_video=0)


class _CaptionedVideos(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        captions = {lang: [f"{lang} {index} {k}" for k in range(2)] for lang in ("en", "de")}
        return {
            "index": index,
            "video": torch.full((1, 2), float(index)),
            "text": select_captions(captions, 2, ["en", "de"]),
        }


def test_caption_collate_in_dataloader_workers(bpe_file):
    collate = CaptionCollate(build_tokenizer(str(bpe_file)), captions_per_video=2, languages=["en", "de"])
    loader = DataLoader(_CaptionedVideos(), batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert [b["index"].tolist() for b in batches] == [[0, 1], [2, 3]]
    batch = batches[1]
    assert batch.keys() == {"index", "video", "text", "text_language"}
    assert batch["video"].shape == (2, 1, 2) and batch["text"]["input_ids"].shape[:2] == (2, 2)
    assert batch["text_language"].tolist() == [[0, 1], [0, 1]]
    assert _decoded(collate.tokenizer, batch["text"]) == [["en 2 0", "de 2 0"], ["en 3 0", "de 3 0"]]


# ----------------------------------------------------------------------------------------------------------
# truncation: counted over every process, the first text named once, the total reported by the DataModule


def test_every_kind_counts_exactly_the_texts_it_truncates(bpe_file, hf_folder):
    for spec in ("bytes", str(bpe_file), str(hf_folder)):
        tokenizer = build_tokenizer(spec, max_length=16)
        texts = [SAMPLES["en"][:n] for n in (1, 5, 10, 20, 40, len(SAMPLES["en"]))] + [
            " ".join(SAMPLES.values())
        ]
        lengths = [tokenizer.untruncated_length(text) for text in texts]
        exact = next(
            t for t in (SAMPLES["en"][:n] for n in range(80)) if tokenizer.untruncated_length(t) == 16
        )
        with pytest.warns(UserWarning, match="truncated") as caught:
            tokenizer([*texts, exact])
            tokenizer(texts)
        assert len([w for w in caught if "truncated" in str(w.message)]) == 1  # named once, not per batch
        expected = sum(length > 16 for length in lengths)
        assert 0 < expected < len(texts), spec
        assert (tokenizer.truncation.truncated, tokenizer.truncation.total) == (
            2 * expected,
            2 * len(texts) + 1,
        )
        assert all(len(ids) <= 16 for ids in tokenizer.encode_batch(texts))


class _TextsOfGrowingLength(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "text": "x" * index}  # index + 2 byte ids


def test_truncations_in_dataloader_workers_reach_the_main_process():
    tokenizer = build_tokenizer("bytes", max_length=8)
    loader = DataLoader(
        _TextsOfGrowingLength(), batch_size=2, num_workers=2, collate_fn=CaptionCollate(tokenizer)
    )
    assert sum(1 for _ in loader) == 6  # each worker collates three batches in its own process
    assert tokenizer.truncation.total == 12
    assert tokenizer.truncation.truncated == sum(index + 2 > 8 for index in range(12)) == 5


def test_datamodule_reports_the_truncated_captions_once_at_the_end_of_the_stage(tmp_path):
    from zoo.data.datamodule import VideoDataModule

    root = generate_synth(tmp_path / "synth", tiny_synth())
    module = VideoDataModule(
        synth=tiny_synth(), synth_root=str(root), num_frames=2, stride=2, size=16, batch_size=4,
        num_workers=2, text=True, max_text_length=12,
    )  # fmt: skip
    module.setup("fit")
    batches = list(module.train_dataloader())  # the workers name the first truncated caption on stderr
    cut = sum(int(mask.sum()) == 12 for batch in batches for mask in batch["text"]["attention_mask"])
    assert cut > 0
    with pytest.warns(
        UserWarning, match=rf"^{cut} of \d+ texts were longer than max_text_length=12"
    ) as caught:
        module.teardown("fit")
    assert len([w for w in caught if "max_text_length=12" in str(w.message)]) == 1
    assert module.tokenizer.truncation.truncated == 0  # reported, then counted afresh


# ----------------------------------------------------------------------------------------------------------
# a word vocabulary (.npy): GDT's HowTo100M text tower


def test_word_vocabulary_numbers_known_words_from_one_and_pads_to_max_length(tmp_path):
    np.save(tmp_path / "dict.npy", np.array(["the", "The", "man", "cuts", "don't", "onion", "été"]))
    tokenizer = build_tokenizer(str(tmp_path / "dict.npy"), max_length=6)
    batch = tokenizer(["The man cuts the onion!", "don't cut, the man; été", "nothing known"])
    assert batch["input_ids"].tolist() == [[2, 3, 4, 1, 6, 0], [5, 1, 3, 7, 0, 0], [0] * 6]
    assert batch["attention_mask"].tolist() == [[1] * 5 + [0], [1] * 4 + [0, 0], [0] * 6]
    assert tokenizer.decode(batch["input_ids"][1]) == "don't the man été"
    assert tokenizer.tokenize("The man, unknown cuts") == ["The ", "man, unknown ", "cuts"]
    with pytest.warns(UserWarning, match="truncated"):
        long = tokenizer(["the man " * 5])  # 10 known words, 6 kept
    assert long["input_ids"].tolist() == [[1, 3] * 3] and tokenizer.truncation.truncated == 1


def test_word_vocabulary_of_python_objects_is_refused_without_loading_it(tmp_path):
    np.save(tmp_path / "objects.npy", np.array(["a", 1, None], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match=r"objects\.npy' holds Python objects .* zoo does not load"):
        build_tokenizer(str(tmp_path / "objects.npy"))
    np.save(tmp_path / "matrix.npy", np.zeros((2, 3)))
    with pytest.raises(UsageError, match="a vocabulary is a 1-D array of words"):
        build_tokenizer(str(tmp_path / "matrix.npy"))
