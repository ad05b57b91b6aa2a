"""Tokenizers for captions: built from a name in the config, trained on local text, all usable offline.

:func:`build_tokenizer` turns a spec into a :class:`TextTokenizer`, a small picklable object (it lives in
DataLoader workers) that maps a list of texts to padded ids::

    tokenizer = build_tokenizer("bytes", max_length=64)
    tokenizer(["A red disc moves.", "一个红色的圆盘。"])
    # {"input_ids": int64 (B, L), "attention_mask": int64 (B, L)}, L = the longest in the batch, <= max_length

Specs, tried in this order:

- ``"bytes"``: UTF-8 bytes plus pad / bos / eos ids; needs no file and no extra package;
- a ``.npy`` array of words: a word-level vocabulary numbered from 1 (0 pads), as GDT's HowTo100M text
  tower reads (``dict.npy``); needs no extra package;
- a ``tokenizer.json`` file, or a folder holding only one (what :func:`train_tokenizer` and
  ``zoo data tokenizer`` write), read with the ``tokenizers`` library;
- a ``transformers`` tokenizer folder (``save_pretrained``: ``tokenizer_config.json`` beside the files);
- a Hugging Face Hub id (``org/name``), read with ``transformers`` from the Hub cache (``HF_HOME``,
  ``HF_HUB_CACHE``); with ``HF_HUB_OFFLINE=1`` (or ``ZOO_OFFLINE=1``) nothing touches the network, and an id
  that is not cached is a :class:`TokenizerNotFoundError` that says what to pass instead.

A spec may also be a dict ``{"name": <spec>, "max_length": int, "revision": str}`` (the last two optional).

Every tokenizer adds its own special tokens (``[CLS] ... [SEP]``, ``<s> ... </s>``), truncates to
``max_length`` ids (specials included) and pads on the right with ``pad_id``; ``attention_mask`` is 1 on
real tokens. A ``transformers`` tokenizer without a pad token pads with its eos token (masked out).

Every tokenizer counts the texts it truncated (:class:`TruncationCount`, in shared memory, so the counts of
DataLoader workers reach the main process): the first truncated text is named once in a warning, and
:class:`~zoo.data.base.ZooDataModule` reports the total at the end of each stage.

``tokenize`` / ``detokenize`` split a text into the model's tokens as pieces of the text (no special tokens,
no truncation) and join a run of them back into text: DeCLUTR's span sampler counts spans in these tokens::

    pieces = tokenizer.tokenize("A red disc moves.")  # e.g. ["A", " red", " disc", " moves", "."]
    tokenizer.detokenize(pieces[1:3])  # "red disc"

:func:`train_tokenizer` trains a ``tokenizers`` model on local text (byte-level BPE by default, which covers
every script) and writes ``tokenizer.json``; :func:`read_caption_texts` reads the texts from caption files.
``transformers`` is the optional extra ``zoo[text]`` (it brings ``tokenizers``).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from zoo.data.accounting import WorkerCounts
from zoo.errors import UsageError

__all__ = [
    "ByteTokenizer",
    "HFTokenizer",
    "MissingTextPackageError",
    "TextTokenizer",
    "TokenizerNotFoundError",
    "TokenizersTokenizer",
    "TruncationCount",
    "WordVocabularyTokenizer",
    "build_tokenizer",
    "read_caption_texts",
    "train_tokenizer",
]

DEFAULT_MAX_LENGTH = 64
_SPEC_KEYS = ("name", "max_length", "revision")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<|endoftext|>")
_INSTEAD = (
    "pass a local tokenizer folder (save_pretrained), 'bytes' (byte-level, no file), "
    "or a tokenizer.json written by `zoo data tokenizer`"
)


class TokenizerNotFoundError(UsageError):
    """A tokenizer spec names no local file and no Hub tokenizer that can be read now."""


class MissingTextPackageError(UsageError):
    """A tokenizer needs ``tokenizers`` or ``transformers``, which are not installed."""

    def __init__(self, package: str, what: str):
        super().__init__(f'{what} needs the {package} package: pip install "zoo[text]"')


def _import_tokenizers(what: str):
    try:
        import tokenizers
    except ImportError:
        raise MissingTextPackageError("tokenizers", what) from None
    return tokenizers


def _import_transformers(what: str):
    try:
        import transformers
    except ImportError:
        raise MissingTextPackageError("transformers", what) from None
    return transformers


# ----------------------------------------------------------------------------------------------------------
# Tokenizers


class TruncationCount:
    """How many texts a tokenizer truncated, of how many it tokenised, over every process that holds it
    (:class:`~zoo.data.accounting.WorkerCounts`: DataLoader workers' counts reach the main process)."""

    def __init__(self):
        self._counts = WorkerCounts(2)  # (truncated, tokenised)

    def add(self, truncated: int, total: int) -> bool:
        """Count a batch; True when these are the first truncated texts anywhere."""
        first = truncated > 0 and self.truncated == 0
        self._counts.add(0, truncated)
        self._counts.add(1, total)
        return first

    @property
    def truncated(self) -> int:
        """Texts cut to ``max_length`` so far."""
        return self._counts.totals()[0]

    @property
    def total(self) -> int:
        """Texts tokenised so far."""
        return self._counts.totals()[1]

    def reset(self) -> None:
        """Start counting again (after a report)."""
        self._counts.reset()


class TextTokenizer(ABC):
    """Texts -> padded ids. Subclasses encode (specials added, truncated); this class pads.

    Attributes:
        name: the spec the tokenizer was built from.
        vocab_size: number of ids (every id is below it).
        pad_id: the id of padding positions.
        max_length: most ids per text, special tokens included.
        truncation: the texts truncated so far (:class:`TruncationCount`).
    """

    name: str
    vocab_size: int
    pad_id: int
    max_length: int

    pad_to_max_length = False
    """Pad every batch to ``max_length`` instead of its longest text (models that pool over padding)."""

    def __init__(self):
        self.truncation = TruncationCount()

    @abstractmethod
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, special tokens added, at most ``max_length`` of them."""

    @abstractmethod
    def untruncated_length(self, text: str) -> int:
        """How many ids ``text`` encodes to, special tokens included, before truncation."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens and padding dropped."""

    @abstractmethod
    def token_starts(self, text: str) -> list[int]:
        """The character offset in ``text`` where each of its tokens begins (no special tokens, no truncation)."""

    def tokenize(self, text: str) -> list[str]:
        """The model's tokens of ``text`` as pieces of it, one per token; ``"".join(pieces) == text``.

        A piece runs from its token's start to the next token's start, so whitespace stays with the token
        before it; a character encoded by several tokens (bytes, byte-level BPE) lies in the last of them and
        the others are ``""``, so every token is counted and no character is cut.

        Args:
            text: the text, of any length.

        Returns:
            One piece per token.
        """
        starts = self.token_starts(text)
        if not starts:
            return []
        bounds = [0]
        for start in starts[1:]:
            bounds.append(max(bounds[-1], start))  # offsets of merged or zero-width tokens never go back
        bounds.append(len(text))
        return [text[begin:end] for begin, end in itertools.pairwise(bounds)]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The text of a run of :meth:`tokenize`'s pieces, without whitespace at either end.

        Args:
            tokens: consecutive pieces of one text.
        """
        return "".join(tokens).strip()

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize and pad ``texts`` to the longest of them.

        Args:
            texts: the B texts.

        Returns:
            ``input_ids`` and ``attention_mask``, int64 ``(B, L)``, L = the longest encoding (<= max_length).
        """
        if isinstance(texts, str):
            raise TypeError("a TextTokenizer takes a list of texts, not one string")
        texts = list(texts)
        encoded = self.encode_batch(texts)
        self._count_truncated(texts, encoded)
        length = self.max_length if self.pad_to_max_length else max((len(ids) for ids in encoded), default=0)
        input_ids = torch.full((len(encoded), length), self.pad_id, dtype=torch.long)  # (B, L)
        attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)  # (B, L)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _count_truncated(self, texts: list[str], encoded: list[list[int]]) -> None:
        """Count the texts cut to ``max_length`` (only those of exactly that length can have been)."""
        full = [
            (text, self.untruncated_length(text))
            for text, ids in zip(texts, encoded)
            if len(ids) >= self.max_length
        ]
        cut = [(text, length) for text, length in full if length > self.max_length]
        if self.truncation.add(len(cut), len(texts)):
            text, length = cut[0]
            shown = text if len(text) <= 80 else text[:77] + "..."
            warnings.warn(
                f"texts longer than max_length={self.max_length} tokens of the tokenizer {self.name!r} are "
                f"truncated, e.g. {shown!r} ({length} tokens); they are counted and "
                "the total is reported at the end of the stage (raise max_text_length to keep them whole)",
                stacklevel=3,
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, "
            f"pad_id={self.pad_id}, max_length={self.max_length})"
        )


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes: id = byte + 3; 0 = pad, 1 = bos, 2 = eos. Needs no file; covers every script.

    Truncation keeps bos and eos and cuts the bytes at a character boundary.

    Args:
        max_length: most ids per text, bos and eos included (>= 2).
    """

    PAD, BOS, EOS = 0, 1, 2
    OFFSET = 3

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        self.name, self.max_length = "bytes", max_length
        self.vocab_size, self.pad_id = 256 + self.OFFSET, self.PAD

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text: bos, its UTF-8 bytes (at most ``max_length - 2``), eos."""
        encoded = []
        for text in texts:
            data = text.encode("utf-8")
            cut = min(len(data), self.max_length - 2)
            while 0 < cut < len(data) and data[cut] & 0xC0 == 0x80:  # inside a multi-byte character
                cut -= 1
            encoded.append([self.BOS, *(byte + self.OFFSET for byte in data[:cut]), self.EOS])
        return encoded

    def untruncated_length(self, text: str) -> int:
        """bos, the text's UTF-8 bytes, eos."""
        return len(text.encode("utf-8")) + 2

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (pad, bos and eos dropped)."""
        data = bytes(int(i) - self.OFFSET for i in ids if int(i) >= self.OFFSET)
        return data.decode("utf-8", errors="replace")

    def token_starts(self, text: str) -> list[int]:
        """One token per UTF-8 byte: each byte of a character starts at that character."""
        return [offset for offset, char in enumerate(text) for _ in range(len(char.encode("utf-8")))]


class TokenizersTokenizer(TextTokenizer):
    """A ``tokenizers`` model read from a ``tokenizer.json`` file.

    Args:
        path: the ``tokenizer.json`` file.
        max_length: most ids per text, special tokens included.
    """

    def __init__(self, path: str | os.PathLike, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        tokenizers = _import_tokenizers(f"the tokenizer file {str(path)!r}")
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises a bare Exception on a malformed file
            raise UsageError(f"{str(path)!r} is not a tokenizers file: {_first_line(exc)}") from None
        pad_id = tokenizer.padding["pad_id"] if tokenizer.padding else _first_id(tokenizer.token_to_id)
        if pad_id is None:
            raise UsageError(
                f"the tokenizer {str(path)!r} has no padding token (one of {', '.join(_PAD_TOKENS)})"
            )
        tokenizer.no_padding()
        self.untruncated = tokenizers.Tokenizer.from_str(tokenizer.to_str())  # for token_starts
        self.untruncated.no_truncation()
        tokenizer.enable_truncation(max_length)
        self.name, self.max_length, self.tokenizer = str(path), max_length, tokenizer
        self.vocab_size, self.pad_id = tokenizer.get_vocab_size(with_added_tokens=True), pad_id

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, special tokens added by the file's post-processor, truncated."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def untruncated_length(self, text: str) -> int:
        """Ids of the untruncated encoding, special tokens included."""
        return len(self.untruncated.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens dropped)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def token_starts(self, text: str) -> list[int]:
        """Where each token begins: the encoding's character offsets."""
        return [start for start, _ in self.untruncated.encode(text, add_special_tokens=False).offsets]


class WordVocabularyTokenizer(TextTokenizer):
    """Words of a fixed vocabulary: word ``i`` of a ``.npy`` array has id ``i + 1``, 0 pads.

    GDT's HowTo100M text tower (the original's ``HT100MDataset``): words are the runs of ``[\\w']``
    characters, case kept; words outside the vocabulary are dropped; no special tokens; every text is
    padded to ``max_length`` (the original's ``max_words``, 20), because the tower max-pools over the padding.

    Args:
        path: the vocabulary, a 1-D ``.npy`` array of strings (``dict.npy``); an array of Python objects is
            refused (loading it would run pickled code).
        max_length: words kept per text.
    """

    WORD = re.compile(r"[\w']+")
    pad_to_max_length = True

    def __init__(self, path: str | os.PathLike, max_length: int = DEFAULT_MAX_LENGTH):
        super().__init__()
        try:
            words = np.load(path, allow_pickle=False)
        except ValueError:
            raise UsageError(
                f"{str(path)!r} holds Python objects (a pickled array), which zoo does not load; if you trust "
                "it, save it as strings once: np.save(path, np.load(path, allow_pickle=True).astype(str))"
            ) from None
        if words.ndim != 1 or words.dtype.kind not in "US":
            raise UsageError(
                f"{str(path)!r}: a vocabulary is a 1-D array of words, got {words.dtype} {words.shape}"
            )
        self.word_to_id = {str(word): i + 1 for i, word in enumerate(words.tolist())}
        self.id_to_word = {i: word for word, i in self.word_to_id.items()}
        self.name, self.max_length = str(path), max_length
        self.vocab_size, self.pad_id = len(words) + 1, 0

    def _ids(self, text: str) -> list[int]:
        return [self.word_to_id[w] for w in self.WORD.findall(text) if w in self.word_to_id]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text's known words, at most ``max_length`` of them."""
        return [self._ids(text)[: self.max_length] for text in texts]

    def untruncated_length(self, text: str) -> int:
        """The text's known words."""
        return len(self._ids(text))

    def decode(self, ids: Sequence[int]) -> str:
        """The words of ``ids``, joined by spaces (padding dropped)."""
        return " ".join(self.id_to_word[int(i)] for i in ids if int(i) in self.id_to_word)

    def token_starts(self, text: str) -> list[int]:
        """Where each known word begins."""
        return [m.start() for m in self.WORD.finditer(text) if m.group() in self.word_to_id]


class HFTokenizer(TextTokenizer):
    """A ``transformers`` tokenizer (``AutoTokenizer``) from a local folder or the Hub cache.

    Args:
        name: a folder written by ``save_pretrained``, or a Hub id.
        max_length: most ids per text, special tokens included.
        revision: Hub revision (branch, tag or commit); ignored for a folder.
    """

    def __init__(self, name: str, max_length: int = DEFAULT_MAX_LENGTH, revision: str | None = None):
        super().__init__()
        transformers = _import_transformers(f"the tokenizer {name!r}")
        local = Path(name).expanduser().is_dir()
        kwargs: dict[str, Any] = {"local_files_only": True} if local else _hub_kwargs(revision)
        source = str(Path(name).expanduser()) if local else name
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            if local:
                raise UsageError(
                    f"{name!r} is not a transformers tokenizer folder: {_first_line(exc)}"
                ) from None
            reason = (
                f"it is not in the Hugging Face cache {kwargs['cache_dir']} and offline mode is on"
                if kwargs["local_files_only"]
                else f"it cannot be read from the Hub ({_first_line(exc)})"
            )
            raise TokenizerNotFoundError(f"tokenizer {name!r}: {reason}; {_INSTEAD}") from None
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise UsageError(f"the tokenizer {name!r} has neither a pad token nor an eos token to pad with")
        self.name, self.max_length, self.tokenizer = name, max_length, tokenizer
        self.vocab_size, self.pad_id = len(tokenizer), int(pad_id)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, special tokens added, truncated."""
        return self.tokenizer(
            list(texts), add_special_tokens=True, truncation=True, max_length=self.max_length
        )["input_ids"]

    def untruncated_length(self, text: str) -> int:
        """Ids of the untruncated encoding, special tokens included."""
        return len(
            self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        )

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens dropped)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def token_starts(self, text: str) -> list[int]:
        """Where each token begins: the character offsets of a fast (``tokenizers``-backed) tokenizer."""
        if not self.tokenizer.is_fast:
            raise UsageError(
                f"the tokenizer {self.name!r} gives no character offsets (it is not a fast tokenizer), "
                "which splitting a text into its tokens needs"
            )
        encoding = self.tokenizer(
            text, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False
        )
        return [start for start, _ in encoding["offset_mapping"]]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _first_id(token_to_id) -> int | None:
    for token in _PAD_TOKENS:
        token_id = token_to_id(token)
        if token_id is not None:
            return token_id
    return None


def _hub_kwargs(revision: str | None) -> dict[str, Any]:
    """``from_pretrained`` arguments for a Hub id: cache and offline mode read now, not at import."""
    from zoo.hub import hub_cache_dir, is_offline

    return {"cache_dir": str(hub_cache_dir()), "local_files_only": is_offline(), "revision": revision}


def build_tokenizer(spec: str | dict, max_length: int = DEFAULT_MAX_LENGTH) -> TextTokenizer:
    """The tokenizer named by ``spec`` (see the module docstring for the forms it takes).

    Args:
        spec: ``"bytes"``, a ``.npy`` word vocabulary, a ``tokenizer.json`` file or its folder, a
            ``transformers`` folder, a Hub id, or a dict ``{"name", "max_length", "revision"}``.
        max_length: most ids per text, special tokens included (a dict's ``max_length`` wins).

    Returns:
        A picklable :class:`TextTokenizer`.

    Raises:
        TokenizerNotFoundError: no such file, or a Hub id that cannot be read now (offline and not cached).
        MissingTextPackageError: the spec needs ``tokenizers`` / ``transformers`` and they are missing.
    """
    revision = None
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(_SPEC_KEYS))
        if unknown or "name" not in spec:
            problem = f"unknown field {unknown[0]!r}" if unknown else "missing field 'name'"
            raise UsageError(f"tokenizer spec: {problem}; fields are {', '.join(_SPEC_KEYS)}")
        max_length, revision, spec = spec.get("max_length", max_length), spec.get("revision"), spec["name"]
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"tokenizer spec must be a non-empty string or a dict, got {spec!r}")
    if not isinstance(max_length, int) or max_length < 2:
        raise UsageError(f"tokenizer max_length must be an integer >= 2, got {max_length!r}")
    if spec == "bytes":
        return ByteTokenizer(max_length)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".npy":
        return WordVocabularyTokenizer(path, max_length)
    if path.is_file():
        return TokenizersTokenizer(path, max_length)
    if path.is_dir():
        if (path / "tokenizer_config.json").is_file():
            return HFTokenizer(spec, max_length)
        if (path / "tokenizer.json").is_file():
            return TokenizersTokenizer(path / "tokenizer.json", max_length)
        raise TokenizerNotFoundError(
            f"tokenizer {spec!r}: the folder has neither tokenizer.json nor tokenizer_config.json; {_INSTEAD}"
        )
    if not _HUB_ID.match(spec) or spec.endswith(".json"):
        raise TokenizerNotFoundError(f"tokenizer {spec!r}: no such file or folder; {_INSTEAD}")
    return HFTokenizer(spec, max_length, revision)


# ----------------------------------------------------------------------------------------------------------
# Training a tokenizer on local text

_SPECIALS = {
    "bpe": ("<pad>", "<s>", "</s>", "<unk>", "<mask>"),
    "unigram": ("<pad>", "<s>", "</s>", "<unk>", "<mask>"),
    "wordpiece": ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"),
}


def train_tokenizer(
    texts: Iterable[str],
    out: str | os.PathLike,
    vocab_size: int = 8000,
    kind: Literal["bpe", "wordpiece", "unigram"] = "bpe",
    min_frequency: int = 2,
) -> Path:
    """Train a ``tokenizers`` model on ``texts`` and write it as ``tokenizer.json``, atomically.

    Kinds: ``bpe`` byte-level BPE (GPT-2/RoBERTa style; every string of any script encodes without unknowns
    and decodes back exactly), ``wordpiece`` (BERT style, cased; decodes with spaces around punctuation and
    between Chinese characters) and ``unigram`` (SentencePiece style, ``▁`` for spaces). Special tokens: ``<pad> <s> </s> <unk> <mask>`` (bpe, unigram)
    or ``[PAD] [CLS] [SEP] [UNK] [MASK]`` (wordpiece), ids 0-4 in that order; every encoding is wrapped in
    the second and third. The file records the pad token, so :func:`build_tokenizer` can read it.

    Args:
        texts: the training texts (captions), read once.
        out: the file to write (a name ending in ``.json``) or a folder to write ``tokenizer.json`` into.
        vocab_size: size of the vocabulary, special tokens included (the result may be smaller on small text).
        kind: ``"bpe"``, ``"wordpiece"`` or ``"unigram"``.
        min_frequency: pairs seen fewer times are not merged (bpe, wordpiece).

    Returns:
        The path of the written ``tokenizer.json``.
    """
    if kind not in _SPECIALS:
        raise UsageError(f"tokenizer kind must be one of {', '.join(_SPECIALS)}, got {kind!r}")
    if vocab_size <= len(_SPECIALS[kind]):
        raise UsageError(f"vocab_size must be more than the {len(_SPECIALS[kind])} special tokens")
    tk = _import_tokenizers("training a tokenizer")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    pad, bos, eos, unk, _mask = specials = list(_SPECIALS[kind])
    if kind == "bpe":
        tokenizer = tk.Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknowns
            show_progress=False,
        )
    elif kind == "wordpiece":
        tokenizer = tk.Tokenizer(models.WordPiece(unk_token=unk))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
        )
    else:
        tokenizer = tk.Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=specials, unk_token=unk, show_progress=False
        )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, tokenizer.token_to_id(bos)), (eos, tokenizer.token_to_id(eos))],
    )
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)

    out = Path(out).expanduser()
    path = out if out.suffix == ".json" else out / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tokenizer.to_str())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_caption_texts(path: str | os.PathLike, languages: Sequence[str] | None = None) -> list[str]:
    """Every caption in a caption file, in file order (training text for :func:`train_tokenizer`).

    Formats, by extension: ``.txt`` one text per line (blank lines skipped); ``.csv`` the ``caption`` column;
    ``.jsonl`` one ``{"caption"}`` or ``{"text"}`` object per line; ``.json`` a list of strings or of such
    objects (SynthMotion's ``captions.json``: ``{"video_id", "caption", "lang"}``), or MSR-VTT's
    ``{"sentences": [{"caption"}]}``.

    Args:
        path: the caption file.
        languages: keep only objects whose ``lang`` is one of these (None: all).

    Returns:
        The caption texts.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no caption file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "caption" not in (reader.fieldnames or ()):
                raise UsageError(f"{str(path)!r} has no 'caption' column")
            return [row["caption"] for row in reader if row["caption"]]
    if suffix not in (".json", ".jsonl"):
        raise UsageError(f"{str(path)!r}: caption files are .txt, .csv, .json or .jsonl")
    content = path.read_text(encoding="utf-8")
    try:
        if suffix == ".jsonl":
            items = [json.loads(line) for line in content.splitlines() if line.strip()]
        else:
            items = json.loads(content)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if isinstance(items, dict) and isinstance(items.get("sentences"), list):
        items = items["sentences"]
    if not isinstance(items, list):
        raise UsageError(f"{str(path)!r}: expected a list of captions")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if languages is None:
                texts.append(item)
            continue
        text = item.get("caption", item.get("text")) if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise UsageError(f"{str(path)!r}: item {i} has no 'caption' or 'text' string")
        if languages is None or item.get("lang") in languages:
            texts.append(text)
    return texts
