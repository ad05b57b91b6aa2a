"""Sample types beyond clips: documents, image–text pairs, multiple-choice QA items and tracklets.

Each type has a Dataset and a collate function that follows :mod:`zoo.data.batch`. Text stays raw strings in
samples; a collate function given ``tokenize`` (``list[str] -> {"input_ids", "attention_mask"}`` of (N, L)
tensors, e.g. a :mod:`zoo.data.text` tokenizer) returns the tokenised layout of the contract instead.

- :class:`DocumentDataset`: one document per line of a text file, or a ``text`` field per JSONL line. With
  ``num_anchors`` it samples DeCLUTR's anchor and positive spans (Giorgi et al. 2021,
  ``sample_anchor_positive_pairs``; see :func:`sample_anchor_positive_spans`).
- :class:`ImageTextDataset`: an image, its text and multi-hot labels (``multilabel``), e.g. for DCVH.
- :class:`MultipleChoiceQADataset`: a question, candidate answers and the correct one (TVQA via
  :func:`zoo.data.formats.parse_tvqa`, SynthMotion's ``qa.jsonl`` via :func:`synthmotion_qa_records`),
  with or without the video clip.
- :class:`TrackletDataset`: T frames of one identity seen by one camera (MARS via
  :func:`zoo.data.formats.parse_mars`, SynthMotion's re-ID manifests via :func:`synthmotion_tracklet_records`);
  :class:`PKSampler` makes batches of P identities × K tracklets for the triplet loss.

Images, clips and tracklets are read by :class:`zoo.data.datasets.VideoDataset` (an image is a one-frame
video), so unreadable files are skipped and counted the same way. Every random draw depends on
``(seed, epoch, index)`` only.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset, Sampler

from zoo.data.base import EpochSeeded
from zoo.data.datasets import VideoDataset, collate_samples
from zoo.data.formats import ManifestError, VideoRecord, read_classes
from zoo.data.shards import SampleDecodeError, ShardItem, ShardKind
from zoo.data.transforms import build_transform
from zoo.errors import UsageError

__all__ = [
    "DOCUMENTS",
    "DocumentDataset",
    "ImageTextDataset",
    "MultipleChoiceQADataset",
    "PKSampler",
    "ShortDocumentWarning",
    "SpanTokenizer",
    "TrackletDataset",
    "WhitespaceTokenizer",
    "collate_documents",
    "collate_image_text",
    "collate_multiple_choice",
    "collate_tracklets",
    "read_documents",
    "read_image_text",
    "sample_anchor_positive_spans",
    "synthmotion_qa_records",
    "synthmotion_tracklet_records",
]

Tokenize = Callable[[list[str]], dict[str, torch.Tensor]]


def _tokens_or_texts(texts: list[str], tokenize: Tokenize | None) -> Any:
    return texts if tokenize is None else tokenize(texts)


class _OverVideos(Dataset):
    """A dataset whose files :class:`VideoDataset` reads (``self.videos``): its epoch, its error counts, and a
    sample loaded from a given record (:meth:`load_exactly`, for shards); a subclass finishes the sample."""

    videos: VideoDataset

    def __len__(self) -> int:
        return len(self.videos)

    def set_epoch(self, epoch: int) -> None:
        self.videos.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.videos.epoch

    def error_stats(self) -> dict[str, Any]:
        return self.videos.error_stats()

    def is_known_bad(self, index: int) -> bool:
        return self.videos.is_known_bad(index)

    def count_failure(self, index: int, reason: str) -> None:
        self.videos.count_failure(index, reason)

    def error_state(self) -> torch.Tensor:
        return self.videos.error_state()

    def load_error_state(self, bad: torch.Tensor) -> None:
        self.videos.load_error_state(bad)

    def _finish(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The dataset's sample from :class:`VideoDataset`'s."""
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._finish(self.videos[index])

    def load_exactly(self, index: int, record: VideoRecord) -> dict[str, Any] | None:
        """Sample ``index`` from ``record`` (e.g. streamed from a shard); None when it cannot be read (counted)."""
        sample = self.videos.load_exactly(index, self._checked(index, record))
        return None if sample is None else self._finish(sample)

    def _checked(self, index: int, record: VideoRecord) -> VideoRecord:
        """``record``, checked as the records given at construction are."""
        return record

    def _take(self, records: Sequence[VideoRecord], streamed: bool) -> list[VideoRecord]:
        """``records``, each checked now unless they are placeholders of streamed ones (checked when loaded)."""
        return [record if streamed else self._checked(i, record) for i, record in enumerate(records)]


# ------------------------------------------------------------------------------------------------------
# documents (DeCLUTR)


class ShortDocumentWarning(UserWarning):
    """Documents too short for the span sampler were left out."""


class SpanTokenizer(Protocol):
    """What the span sampler counts in: a :class:`zoo.data.text.TextTokenizer` (the model's tokens) or
    :class:`WhitespaceTokenizer`."""

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text``."""

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The text of a run of tokens."""


class WhitespaceTokenizer:
    """Whitespace tokens, joined back with spaces (the original sampler without a tokenizer)."""

    def tokenize(self, text: str) -> list[str]:
        """``text.split()``."""
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The tokens joined with spaces."""
        return " ".join(tokens)


def read_documents(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(text, where)`` of each document: non-empty lines of a text file, or ``text`` of each JSONL line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"document file {str(path)!r} not found")
    documents = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(path, f"line {n}", f"invalid JSON ({err.msg})") from err
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ManifestError(path, f"line {n}", "needs a string field 'text'")
            line = item["text"]
        documents.append((line, f"{path}, line {n}"))
    return documents


def sample_anchor_positive_spans(
    tokens: Sequence[str],
    num_anchors: int,
    num_positives: int,
    max_span_len: int,
    min_span_len: int,
    sampling_strategy: Literal["subsuming", "adjacent"] | None,
    rng: np.random.RandomState,
    detokenize: Callable[[Sequence[str]], str] = " ".join,
) -> tuple[list[str], list[str]]:
    """DeCLUTR's anchors and positives (``sample_anchor_positive_pairs``), draw for draw.

    Anchor lengths follow Beta(4, 2) over [min_span_len, max_span_len]; each anchor starts in a random
    ``max_span_len``-aligned block, which is then removed with its neighbours, so anchors never overlap.
    Positive lengths follow Beta(2, 4); a positive starts anywhere from ``anchor_start - length`` to the anchor's
    end (it may overlap, be adjacent to or inside the anchor), inside the anchor (``"subsuming"``) or right
    before or after it (``"adjacent"``). Each span's tokens become text through ``detokenize`` (the original
    joins them with spaces and, with a model's tokenizer, decodes them).

    Args:
        tokens: the document, tokenised (at least ``num_anchors * max_span_len * 2`` tokens).
        num_anchors: anchors per document.
        num_positives: positives per anchor (anchor-major order).
        max_span_len: longest span, in tokens.
        min_span_len: shortest span, in tokens.
        sampling_strategy: None, ``"subsuming"`` or ``"adjacent"``.
        rng: the legacy generator the draws come from.
        detokenize: a run of tokens -> the span's text (default: joined with spaces).

    Returns:
        ``num_anchors`` anchors and ``num_anchors * num_positives`` positives.
    """
    num_tokens = len(tokens)
    if num_tokens < num_anchors * max_span_len * 2:
        raise UsageError(
            f"a document needs at least {num_anchors * max_span_len * 2} tokens "
            f"(num_anchors * max_span_len * 2), got {num_tokens}"
        )
    if min_span_len > max_span_len:
        raise UsageError(f"min_span_len ({min_span_len}) must not exceed max_span_len ({max_span_len})")
    anchors, positives = [], []
    valid_anchor_starts = list(range(0, num_tokens - max_span_len + 1, max_span_len))
    for i in range(num_anchors):
        anchor_len = int(rng.beta(4, 2) * (max_span_len - min_span_len) + min_span_len)
        if len(valid_anchor_starts) // (num_anchors - i) < num_anchors - i:  # few blocks left: first or last
            block = rng.choice([0, len(valid_anchor_starts) - 1])
        else:
            block = rng.randint(len(valid_anchor_starts))
        block_start = valid_anchor_starts[block]
        anchor_start = rng.randint(block_start, block_start + max_span_len - anchor_len + 1)
        del valid_anchor_starts[max(0, block - 1) : block + 2]  # the block and its neighbours
        anchor_end = anchor_start + anchor_len
        anchors.append(detokenize(tokens[anchor_start:anchor_end]))
        for _ in range(num_positives):
            if sampling_strategy == "subsuming":
                positive_len = int(rng.beta(2, 4) * (anchor_len - min_span_len) + min_span_len)
                positive_start = rng.randint(anchor_start, anchor_end - positive_len + 1)
            elif sampling_strategy == "adjacent":
                longest = min(max_span_len, max(anchor_start, num_tokens - anchor_end))
                positive_len = int(rng.beta(2, 4) * (longest - min_span_len) + min_span_len)
                starts = []
                if anchor_start - positive_len > 0:  # as coded: never a positive starting at token 0
                    starts.append(anchor_start - positive_len)
                if anchor_end + positive_len <= num_tokens:
                    starts.append(anchor_end)
                positive_start = rng.choice(starts)
            else:
                positive_len = int(rng.beta(2, 4) * (max_span_len - min_span_len) + min_span_len)
                positive_start = rng.randint(
                    max(0, anchor_start - positive_len), min(anchor_end, num_tokens - positive_len) + 1
                )
            positives.append(detokenize(tokens[positive_start : positive_start + positive_len]))
    return anchors, positives


class DocumentDataset(EpochSeeded, Dataset):
    """Documents (text only); with ``num_anchors``, DeCLUTR's anchor and positive spans of each.

    Samples: ``{"text": str, "index"}``; with spans ``{"anchors": [A str], "positives": [A·P str], "index"}``.

    Args:
        source: a text file (one document per line), a JSONL file (field ``text``) or a list of texts; None:
            ``streamed`` documents, each given with its index to :meth:`load_record` (from shards).
        num_anchors: anchors per document (None: whole documents).
        num_positives: positives per anchor.
        max_span_len: longest span in tokens (DeCLUTR: 512).
        min_span_len: shortest span in tokens (DeCLUTR: 32).
        sampling_strategy: None, ``"subsuming"`` or ``"adjacent"`` (see :func:`sample_anchor_positive_spans`).
        span_tokenizer: the tokens spans are counted in and the way back to text: the model's
            :class:`~zoo.data.text.TextTokenizer`, or None for :class:`WhitespaceTokenizer`.
        seed: base of the span draws.
        streamed: the number of documents when ``source`` is None.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str] | None,
        *,
        num_anchors: int | None = None,
        num_positives: int = 2,
        max_span_len: int = 512,
        min_span_len: int = 32,
        sampling_strategy: Literal["subsuming", "adjacent"] | None = None,
        span_tokenizer: SpanTokenizer | None = None,
        seed: int = 0,
        streamed: int = 0,
    ) -> None:
        if source is None:
            documents = [("", f"streamed document {i}") for i in range(streamed)]
        elif isinstance(source, (str, os.PathLike)):
            documents = read_documents(source)
        else:
            documents = [(text, f"document {i}") for i, text in enumerate(source)]
        if sampling_strategy not in (None, "subsuming", "adjacent"):
            raise UsageError(
                f"sampling_strategy must be None, 'subsuming' or 'adjacent', got {sampling_strategy!r}"
            )
        if num_anchors is not None and (num_anchors < 1 or num_positives < 1 or min_span_len > max_span_len):
            raise UsageError(
                f"spans need num_anchors, num_positives >= 1 and min_span_len <= max_span_len; got "
                f"{num_anchors}, {num_positives}, {min_span_len}, {max_span_len}"
            )
        self.num_anchors, self.num_positives = num_anchors, num_positives
        self.max_span_len, self.min_span_len = max_span_len, min_span_len
        self.sampling_strategy = sampling_strategy
        self.span_tokenizer = span_tokenizer or WhitespaceTokenizer()
        if num_anchors is not None and source is not None:  # DeCLUTR keeps documents of >= that many tokens
            shortest = self.shortest
            short = [where for text, where in documents if len(self.span_tokenizer.tokenize(text)) < shortest]
            if short:
                warnings.warn(
                    f"left out {len(short)} of {len(documents)} documents shorter than {shortest} tokens "
                    f"(num_anchors * max_span_len * 2), e.g. {short[0]}",
                    ShortDocumentWarning,
                    stacklevel=2,
                )
                left_out = set(short)
                documents = [d for d in documents if d[1] not in left_out]
        if not documents:
            raise UsageError(
                f"no documents in {source if isinstance(source, (str, os.PathLike)) else 'the list'}"
            )
        self.documents = [text for text, _ in documents]
        self._init_epoch(seed)

    @property
    def shortest(self) -> int:
        """Tokens a document needs for its spans: ``num_anchors * max_span_len * 2``."""
        return (self.num_anchors or 0) * self.max_span_len * 2

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._sample(int(index), self.documents[int(index)])

    def load_record(self, index: int, text: str) -> dict[str, Any]:
        """Sample ``index`` of document ``text`` (streamed); a :class:`~zoo.data.shards.SampleDecodeError` for
        a document too short for the spans (files leave those out at construction; a stream counts them)."""
        tokens = len(self.span_tokenizer.tokenize(text))
        if tokens < self.shortest:
            raise SampleDecodeError(f"a document of {tokens} tokens, shorter than {self.shortest}")
        return self._sample(int(index), text)

    def _sample(self, index: int, text: str) -> dict[str, Any]:
        if self.num_anchors is None:
            return {"text": text, "index": index}
        anchors, positives = sample_anchor_positive_spans(
            self.span_tokenizer.tokenize(text),
            self.num_anchors,
            self.num_positives,
            self.max_span_len,
            self.min_span_len,
            self.sampling_strategy,
            self.legacy_rng(index),
            self.span_tokenizer.detokenize,
        )
        return {"anchors": anchors, "positives": positives, "index": index}


def _document_item(text: str) -> ShardItem:
    return ShardItem({}, {"text": text})


def _document_text(members: dict[str, bytes], meta: dict[str, Any], name: str) -> str:
    if not isinstance(meta.get("text"), str):
        raise SampleDecodeError(f"{name}.json: needs a string field 'text'")
    return meta["text"]


DOCUMENTS = ShardKind("documents", _document_item, _document_text)
"""Documents in shards: a JSON member ``{"text": ...}`` per document, no other file."""


def collate_documents(samples: Sequence[dict[str, Any]], tokenize: Tokenize | None = None) -> dict[str, Any]:
    """Whole documents: ``text`` (B texts or tokens (B, L)).

    Spans: ``text`` = the N = B·A anchors (texts or tokens (N, L)), ``caption_to_video`` (N,) the document of
    each anchor, ``positives`` = the N·P positives, anchor-major (texts or tokens (N·P, L)).
    """
    index = torch.tensor([s["index"] for s in samples], dtype=torch.int64)
    if "anchors" not in samples[0]:
        return {"text": _tokens_or_texts([s["text"] for s in samples], tokenize), "index": index}
    anchors = [a for s in samples for a in s["anchors"]]
    owners = [row for row, s in enumerate(samples) for _ in s["anchors"]]
    return {
        "text": _tokens_or_texts(anchors, tokenize),
        "caption_to_video": torch.tensor(owners, dtype=torch.int64),
        "positives": _tokens_or_texts([p for s in samples for p in s["positives"]], tokenize),
        "index": index,
    }


# ------------------------------------------------------------------------------------------------------
# image–text pairs with multi-hot labels


def _single_frame(video_len: int, fps: float, rng: Any = None) -> np.ndarray:
    """The sampler of one-frame "videos" (images): frame 0, (1, 1)."""
    return np.zeros((1, 1), dtype=np.int64)


def _label_index(value: Any, classes: list[str] | None, path: Path, where: str) -> int:
    if classes is not None and isinstance(value, str) and value in classes:
        return classes.index(value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        label = int(value)
        if classes is None or 0 <= label < len(classes):
            return label
    known = f"one of {len(classes)} classes" if classes is not None else "an integer (no classes.txt)"
    raise ManifestError(path, where, f"label {value!r} is not {known}")


def read_image_text(path: str | os.PathLike) -> tuple[list[VideoRecord], list[str]]:
    """Image–text pairs with labels: JSONL ``{"image", "text", "labels": [...]}`` or CSV ``image,text,labels``.

    CSV labels are separated by ``;``. Labels are class names of ``classes.txt`` beside the file (its line
    order is the label order), or integers when there is no ``classes.txt``. Image paths are relative to the
    file's folder (or absolute). Returns one record per pair (``extra["multilabel"]`` float32 multi-hot) and
    the class names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image–text manifest {str(path)!r} not found")
    classes = read_classes(path.parent / "classes.txt") if (path.parent / "classes.txt").is_file() else None
    rows: list[tuple[str, dict]] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {n}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ManifestError(path, f"line {n}", f"invalid JSON ({err.msg})") from err
    else:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                labels = [v.strip() for v in (row.get("labels") or "").split(";") if v.strip()]
                rows.append((f"line {len(rows) + 2}", {**row, "labels": labels}))
    parsed = []
    for where, row in rows:
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("image", "text")):
            raise ManifestError(path, where, "needs string fields 'image' and 'text'")
        if not row["text"].strip():
            raise ManifestError(path, where, "field 'text' is empty")
        if not isinstance(row.get("labels", []), list):
            raise ManifestError(path, where, "field 'labels' must be a list")
        parsed.append((where, row, [_label_index(v, classes, path, where) for v in row.get("labels", [])]))
    if classes is None:
        classes = [str(i) for i in range(max((max(ls, default=-1) for *_, ls in parsed), default=-1) + 1)]
    records = []
    for _, row, labels in parsed:
        image = Path(row["image"]).expanduser()
        image = (image if image.is_absolute() else path.parent / image).resolve()
        multilabel = np.zeros(len(classes), dtype=np.float32)
        multilabel[labels] = 1.0
        records.append(
            VideoRecord(image, None, caption=row["text"], extra={"frames": [image], "multilabel": multilabel})
        )
    return records, classes


class ImageTextDataset(_OverVideos):
    """Image–text pairs with multi-hot labels (:func:`read_image_text`).

    Samples: ``image`` (C, H, W) (``image_views`` (K, C, H, W) for a transform that makes K crops), ``text``,
    ``multilabel`` float32 (num_classes,) multi-hot, ``index``.

    Args:
        source: a manifest for :func:`read_image_text`, or ``(records, classes)`` it returned.
        transform: uint8 (T, H, W, C) -> float (C, T, H, W) (default: the "eval" preset at ``image_size``).
        image_size: side of the default transform's crop.
        seed: base of every random draw.
        **robustness: ``on_error``, ``max_error_fraction``, ``error_log`` (and ``streamed``) of
            :class:`VideoDataset`.
    """

    def __init__(
        self,
        source: str | os.PathLike | tuple[list[VideoRecord], list[str]],
        transform: Callable[..., torch.Tensor] | None = None,
        *,
        image_size: int = 224,
        seed: int = 0,
        **robustness: Any,
    ) -> None:
        records, self.classes = read_image_text(source) if isinstance(source, (str, os.PathLike)) else source
        self.videos = VideoDataset(
            records,
            _single_frame,
            transform or build_transform("eval", size=image_size),
            text=True,
            labels=False,
            extras=("multilabel",),
            seed=seed,
            **robustness,
        )

    def _finish(self, sample: dict[str, Any]) -> dict[str, Any]:
        if "video" in sample:
            sample["image"] = sample.pop("video")[:, 0]  # (C, 1, H, W) -> (C, H, W)
        else:
            sample["image_views"] = sample.pop("video_views")[:, :, 0]  # (K, C, H, W)
        sample["multilabel"] = torch.as_tensor(
            np.asarray(sample["multilabel"], dtype=np.float32)
        )  # shards: a list
        del sample["frame_indices"]
        return sample


def collate_image_text(samples: Sequence[dict[str, Any]], tokenize: Tokenize | None = None) -> dict[str, Any]:
    """``image`` (B, C, H, W), ``multilabel`` (B, num_classes), ``index`` (B,), ``text`` (texts or tokens)."""
    batch = collate_samples(samples)
    batch["text"] = _tokens_or_texts(batch["text"], tokenize)
    return batch


# ------------------------------------------------------------------------------------------------------
# multiple-choice QA


def synthmotion_qa_records(root: str | os.PathLike, split: str = "train") -> list[VideoRecord]:
    """SynthMotion's QA items of ``split`` as records shaped like :func:`zoo.data.formats.parse_tvqa`'s.

    ``label`` is the correct answer, ``caption`` the question; ``extra``: ``question``, ``answers``, ``kind``,
    ``video_id``.
    """
    root = Path(root)
    path = root / "qa.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"SynthMotion QA file {str(path)!r} not found")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(path, where, f"invalid JSON ({err.msg})") from err
        missing = [k for k in ("split", "path", "question", "answers", "answer_idx") if k not in item]
        if missing:
            raise ManifestError(path, where, f"missing field(s) {missing}")
        answers, answer_idx = item["answers"], item["answer_idx"]
        if not isinstance(answers, list) or not answers:
            raise ManifestError(path, where, "field 'answers' must be a non-empty list")
        if isinstance(answer_idx, bool) or not isinstance(answer_idx, int):
            raise ManifestError(path, where, f"answer_idx must be an integer, got {answer_idx!r}")
        if not 0 <= answer_idx < len(answers):
            raise ManifestError(
                path, where, f"answer_idx {answer_idx} is out of range for {len(answers)} answers"
            )
        if item["split"] != split:
            continue
        extra = {k: item.get(k) for k in ("question", "answers", "kind", "video_id")}
        records.append(
            VideoRecord(
                (root / item["path"]).resolve(), int(item["answer_idx"]), None, None, item["question"], extra
            )
        )
    if not records:
        raise UsageError(f"no QA items of split {split!r} in {path}")
    return records


class MultipleChoiceQADataset(EpochSeeded, _OverVideos):
    """Multiple-choice QA items: ``question`` (str), ``answers`` (A str), ``answer`` (index, -1: unknown).

    Records need ``extra["question"]`` and ``extra["answers"]`` and the correct answer as ``label``
    (:func:`zoo.data.formats.parse_tvqa`, :func:`synthmotion_qa_records`). With a ``sampler`` the clip is
    decoded too (``video`` or ``video_views``, ``frame_indices``) by :class:`VideoDataset`.

    Args:
        records: the items (placeholders when ``streamed``).
        sampler: a clip sampler (:mod:`zoo.data.samplers`), or None for text only.
        transform: the clip transform (with a sampler).
        seed: base of every random draw.
        streamed: the records are placeholders of items streamed from shards, each checked when it is loaded
            (:meth:`load_exactly`, or :meth:`load_record` for text only).
        **video_options: other arguments of :class:`VideoDataset` (views, audio, on_error, ...).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: Callable[..., np.ndarray] | None = None,
        transform: Callable[..., torch.Tensor] | None = None,
        *,
        seed: int = 0,
        streamed: bool = False,
        **video_options: Any,
    ) -> None:
        self.records = self._take(records, streamed)
        self.videos = None
        self._init_epoch(seed)  # text only: the epoch still orders streamed shards
        if sampler is not None:
            self.videos = VideoDataset(
                self.records,
                sampler,
                transform,
                extras=("question", "answers"),
                seed=seed,
                streamed=streamed,
                **video_options,
            )

    def _checked(self, index: int, record: VideoRecord) -> VideoRecord:
        answers = record.extra.get("answers")
        if not isinstance(record.extra.get("question"), str) or not isinstance(answers, list) or not answers:
            raise UsageError(f"QA record {index} ({record.path}) needs extra 'question' and a list 'answers'")
        if record.label is not None and not 0 <= record.label < len(answers):
            raise UsageError(f"QA record {index} ({record.path}): answer {record.label} of {len(answers)}")
        return record

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        EpochSeeded.set_epoch(self, epoch)
        if self.videos is not None:
            self.videos.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return EpochSeeded.epoch.fget(self)

    def error_stats(self) -> dict[str, Any]:
        """The clips' unreadable-file counts (:meth:`VideoDataset.error_stats`); zeros for text only."""
        if self.videos is None:
            return {"loaded": 0, "failed": 0, "bad_records": 0, "bad_fraction": 0.0, "bad_paths": []}
        return self.videos.error_stats()

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.videos is None:
            return self.load_record(int(index), self.records[int(index)])
        return super().__getitem__(index)

    def load_record(self, index: int, record: VideoRecord) -> dict[str, Any]:
        """The text-only item ``index`` of ``record``."""
        record = self._checked(index, record)
        sample = {"question": record.extra["question"], "answers": list(record.extra["answers"])}
        sample.update(answer=-1 if record.label is None else int(record.label), index=index)
        return sample

    def _finish(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample["answer"] = sample.pop("label")
        return sample


def collate_multiple_choice(
    samples: Sequence[dict[str, Any]], tokenize: Tokenize | None = None, separator: str = " "
) -> dict[str, Any]:
    """``answer``, ``index`` (B,), the clips when present, and the texts.

    Without ``tokenize``: ``text`` (B questions) and ``answers`` (B lists of A answers). With it: ``text``
    tokens (B, L) of the questions and ``answers`` tokens (B, A, L) of ``question + separator + answer``.
    """
    counts = {len(s["answers"]) for s in samples}
    if len(counts) > 1:
        raise UsageError(f"QA items of one batch must have as many answers each, got {sorted(counts)}")
    questions = [s["question"] for s in samples]
    answers = [s["answers"] for s in samples]
    batch = collate_samples(
        [{k: v for k, v in s.items() if k not in ("question", "answers")} for s in samples]
    )
    if tokenize is None:
        batch.update(text=questions, answers=answers)
        return batch
    pairs = [f"{q}{separator}{a}" for q, options in zip(questions, answers) for a in options]
    tokens = tokenize(pairs)  # (B·A, L)
    batch["text"] = tokenize(questions)
    batch["answers"] = {
        key: rearrange(value, "(b a) l -> b a l", b=len(samples)) for key, value in tokens.items()
    }  # (B, A, L)
    return batch


# ------------------------------------------------------------------------------------------------------
# tracklets (video re-identification)


def synthmotion_tracklet_records(root: str | os.PathLike, split: str = "train") -> list[VideoRecord]:
    """SynthMotion's re-ID tracklets of ``split`` (``train``, ``query`` or ``gallery``), one video each.

    The manifest's ``identity`` and ``camera`` columns become ``extra["pid"]`` and ``extra["camera"]`` (ints),
    and ``label`` indexes the split's sorted identities, as :func:`zoo.data.formats.parse_mars` gives them. (SynthMotion numbers identities from 0, which MARS
    reserves for distractors: read its manifests, not its ``reid/`` folder with ``parse_mars``.)
    """
    if split not in ("train", "query", "gallery"):
        raise UsageError(f"SynthMotion re-ID splits are train, query and gallery; got {split!r}")
    root = Path(root)
    manifest = root / f"reid_{split}.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"SynthMotion re-ID manifest {str(manifest)!r} not found")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields_of_rows = []
    for n, row in enumerate(rows, 2):
        fields = {}
        for column in ("identity", "camera"):
            if not (row.get(column) or "").isdigit():
                raise ManifestError(
                    manifest, f"line {n}", f"field {column!r} must be an integer, got {row.get(column)!r}"
                )
            fields[column] = int(row[column])
        fields_of_rows.append(fields)
    identities = sorted({fields["identity"] for fields in fields_of_rows})
    records = []
    for row, fields in zip(rows, fields_of_rows):
        extra = {"pid": fields["identity"], "camera": fields["camera"], "tracklet_id": Path(row["path"]).stem}
        label = identities.index(fields["identity"])
        records.append(VideoRecord((root / row["path"]).resolve(), label, extra=extra))
    return records


class TrackletDataset(_OverVideos):
    """T frames of a tracklet (one identity, one camera), its ``identity`` and ``camera``.

    Records are frame lists or tracklet videos with ``extra["pid"]`` and ``extra["camera"]``
    (:func:`zoo.data.formats.parse_mars`, :func:`synthmotion_tracklet_records`). Samples: ``video``
    (C, T, H, W) (or ``video_views``), ``identity`` (the person id, comparable across query and gallery),
    ``camera``, ``label`` (the identity's index in the split, for a classifier), ``index``, ``frame_indices``.

    Args:
        records: the tracklets.
        sampler: which frames (:mod:`zoo.data.samplers`, e.g. ``RandomClipSampler(8, short_video="loop")``).
        transform: the clip transform.
        seed: base of every random draw.
        streamed: the records are placeholders of tracklets streamed from shards, each checked when it is
            loaded (:meth:`load_exactly`).
        **video_options: other arguments of :class:`VideoDataset` (views, on_error, ...).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampler: Callable[..., np.ndarray],
        transform: Callable[..., torch.Tensor] | None = None,
        *,
        seed: int = 0,
        streamed: bool = False,
        **video_options: Any,
    ) -> None:
        self.records = self._take(records, streamed)
        self.videos = VideoDataset(
            self.records,
            sampler,
            transform,
            extras=("pid", "camera"),
            seed=seed,
            streamed=streamed,
            **video_options,
        )

    def _checked(self, index: int, record: VideoRecord) -> VideoRecord:
        if not all(isinstance(record.extra.get(k), int) for k in ("pid", "camera")):
            raise UsageError(
                f"tracklet record {index} ({record.path}) needs integer extra 'pid' and 'camera'"
            )
        return record

    @property
    def identities(self) -> list[int]:
        """The identity of each tracklet (for :class:`PKSampler`)."""
        return [record.extra["pid"] for record in self.records]

    def _finish(self, sample: dict[str, Any]) -> dict[str, Any]:
        sample["identity"] = sample.pop("pid")
        return sample


collate_tracklets = collate_samples  # video, identity, camera, label, index, frame_indices: all stack


class PKSampler(Sampler[list[int]]):
    """Batches of P identities × K tracklets each (the batch-hard triplet loss's batches).

    Every epoch visits each identity (with at least one tracklet) once, in random order, ``p`` per batch (the
    last incomplete batch is dropped); an identity with fewer than ``k`` tracklets repeats some. With several
    ranks, each takes every ``num_replicas``-th batch (all ranks get as many). Draws depend on
    ``(seed, epoch)``; :meth:`set_epoch` is called by Lightning each epoch.

    Args:
        identities: the identity of each dataset item (:attr:`TrackletDataset.identities`).
        p: identities per batch.
        k: tracklets per identity.
        seed: base of the draws.
        num_replicas: number of ranks.
        rank: this rank.
    """

    def __init__(
        self, identities: Sequence[int], p: int, k: int, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        by_identity: dict[int, list[int]] = {}
        for index, identity in enumerate(identities):
            by_identity.setdefault(int(identity), []).append(index)
        if p < 1 or k < 1:
            raise UsageError(f"p and k must be >= 1, got p={p}, k={k}")
        if len(by_identity) < p * num_replicas:
            raise UsageError(
                f"a PK batch needs {p} identities per rank ({num_replicas} ranks); the dataset has {len(by_identity)}"
            )
        if not 0 <= rank < num_replicas:
            raise UsageError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.by_identity = by_identity
        self.p, self.k, self.seed = p, k, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def batch_size(self) -> int:
        """Indices per batch: P·K."""
        return self.p * self.k

    def __len__(self) -> int:
        return len(self.by_identity) // self.p // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(sorted(self.by_identity))
        batches = []
        for first in range(0, len(self) * self.num_replicas * self.p, self.p):
            batch = []
            for identity in order[first : first + self.p]:
                indices = self.by_identity[int(identity)]
                batch += rng.choice(indices, size=self.k, replace=len(indices) < self.k).tolist()
            batches.append(batch)
        yield from batches[self.rank :: self.num_replicas]
