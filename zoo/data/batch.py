"""The batch contract: every key a batch may hold, its shape and its dtype, in one place.

Datasets and collate functions produce these keys, methods and evaluation read them; nothing infers
a layout from a tensor's number of dimensions. A sample (one item of a dataset) has the same keys
without the leading ``B``. Dimension names:

``B`` batch, ``K`` views (clips or crops of one sample, clip-major), ``C`` channels, ``T`` frames,
``H``/``W`` pixels, ``F`` frequency bins, ``S`` spectrogram frames, ``L`` tokens, ``N`` captions
of the whole batch, ``A`` answer candidates, ``D`` feature dimension, ``M`` motion-vector channels (2), ``Y`` classes.

Text is tokenised at collate time (:mod:`zoo.data.text_collate`): ``text`` is a mapping
``{"input_ids", "attention_mask"}`` of (B, L) tensors — (B, K, L) with K captions per video, or
(N, L) with ``caption_to_video`` (N,) when every caption of every video is kept (retrieval);
``text_language`` gives each caption's language (an index into the configured languages) with
the leading dimensions of ``text``. Per language, ``text`` may instead map each language code to
such a mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from zoo.errors import UsageError

__all__ = [
    "AUDIO",
    "AUDIO_MASK",
    "AUDIO_VIEWS",
    "AUDIO_VIEWS_MASK",
    "CAMERA",
    "CAPTION_TO_VIDEO",
    "CONTRACT",
    "FEATURES",
    "FRAME_INDICES",
    "IDENTITY",
    "IMAGE",
    "IMAGE_VIEWS",
    "INDEX",
    "KEYFRAME",
    "LABEL",
    "MASK",
    "MOTION_VECTORS",
    "MULTILABEL",
    "NUM_FRAMES",
    "POSITIVES",
    "QA_ANSWER",
    "QA_CANDIDATES",
    "SEGMENTS",
    "TEXT",
    "TEXT_LANGUAGE",
    "VIDEO",
    "VIDEO_VIEWS",
    "BatchContractError",
    "KeySpec",
    "MissingBatchKeyError",
    "check_batch",
    "contract_table",
]

VIDEO = "video"
VIDEO_VIEWS = "video_views"
IMAGE = "image"
IMAGE_VIEWS = "image_views"
AUDIO = "audio"
AUDIO_MASK = "audio_mask"
AUDIO_VIEWS = "audio_views"
AUDIO_VIEWS_MASK = "audio_views_mask"
TEXT = "text"
TEXT_LANGUAGE = "text_language"
CAPTION_TO_VIDEO = "caption_to_video"
KEYFRAME = "keyframe"
MOTION_VECTORS = "motion_vectors"
FEATURES = "features"
MASK = "mask"
SEGMENTS = "segments"
NUM_FRAMES = "num_frames"
LABEL = "label"
INDEX = "index"
FRAME_INDICES = "frame_indices"
IDENTITY = "identity"
CAMERA = "camera"
QA_CANDIDATES = "answers"
QA_ANSWER = "answer"
POSITIVES = "positives"
MULTILABEL = "multilabel"


@dataclass(frozen=True)
class KeySpec:
    """One batch key: its dimensions (batched), dtype family and meaning."""

    key: str
    dims: tuple[str, ...]
    dtype: str  # "float", "int", "bool" or "tokens" (a mapping of (…, L) int tensors)
    meaning: str


CONTRACT: dict[str, KeySpec] = {
    spec.key: spec
    for spec in (
        KeySpec(VIDEO, ("B", "C", "T", "H", "W"), "float", "one normalised RGB clip per sample"),
        KeySpec(VIDEO_VIEWS, ("B", "K", "C", "T", "H", "W"), "float", "K clips or crops per sample"),
        KeySpec(IMAGE, ("B", "C", "H", "W"), "float", "one image per sample"),
        KeySpec(IMAGE_VIEWS, ("B", "K", "C", "H", "W"), "float", "K augmented images per sample"),
        KeySpec(AUDIO, ("B", "1", "F", "S"), "float", "spectrogram aligned to the clip's time"),
        KeySpec(AUDIO_MASK, ("B", "S"), "bool", "spectrogram frames that have sound"),
        KeySpec(AUDIO_VIEWS, ("B", "K", "1", "F", "S"), "float", "a spectrogram per video view"),
        KeySpec(AUDIO_VIEWS_MASK, ("B", "K", "S"), "bool", "sound present, per view"),
        KeySpec(TEXT, ("B", "L"), "tokens", "input_ids + attention_mask; (B, K, L) or (N, L) for more"),
        KeySpec(TEXT_LANGUAGE, ("B",), "int", "language of each caption, leading dims of ``text``"),
        KeySpec(CAPTION_TO_VIDEO, ("N",), "int", "the sample each caption of ``text`` belongs to"),
        KeySpec(KEYFRAME, ("B", "C", "H", "W"), "float", "the I-frame nearest to the clip"),
        KeySpec(MOTION_VECTORS, ("B", "M", "T", "H", "W"), "float", "motion vectors of the clip's window"),
        KeySpec(FEATURES, ("B", "T", "D"), "float", "precomputed per-frame features, padded"),
        KeySpec(MASK, ("B", "T"), "bool", "valid positions of ``features`` / ``segments``"),
        KeySpec(SEGMENTS, ("B", "T"), "int", "per-frame segment labels (-1 on padding)"),
        KeySpec(NUM_FRAMES, ("B",), "int", "frames of the whole video a sequence comes from"),
        KeySpec(LABEL, ("B",), "int", "class label (-1: none)"),
        KeySpec(INDEX, ("B",), "int", "position of the sample in its dataset"),
        KeySpec(FRAME_INDICES, ("B", "K", "T"), "int", "decoded frame numbers of each clip"),
        KeySpec(IDENTITY, ("B",), "int", "person identity (re-identification)"),
        KeySpec(CAMERA, ("B",), "int", "camera of the tracklet"),
        KeySpec(QA_CANDIDATES, ("B", "A", "L"), "tokens", "tokenised question + each candidate answer"),
        KeySpec(QA_ANSWER, ("B",), "int", "index of the correct candidate"),
        KeySpec(POSITIVES, ("N", "L"), "tokens", "positive spans of the anchors in ``text`` (documents)"),
        KeySpec(MULTILABEL, ("B", "Y"), "float", "multi-hot labels over Y classes"),
    )
}

_DTYPES = {
    "float": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    "int": (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8),
    "bool": (torch.bool,),
}


class BatchContractError(UsageError):
    """A batch breaks the contract: a key is missing, or has the wrong rank or dtype."""


class MissingBatchKeyError(BatchContractError, KeyError):
    """A batch lacks a key that its consumer needs (names the key, the consumer and the batch's keys)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _check_tensor(key: str, value: Any, dims: tuple[str, ...], dtype: str, owner: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise BatchContractError(f"{owner}: batch['{key}'] must be a tensor, got {type(value).__name__}")
    if value.ndim != len(dims):
        raise BatchContractError(
            f"{owner}: batch['{key}'] must be ({', '.join(dims)}), got shape {tuple(value.shape)}"
        )
    if value.dtype not in _DTYPES[dtype]:
        raise BatchContractError(f"{owner}: batch['{key}'] must be {dtype}, got {value.dtype}")


def _check_tokens(key: str, value: Any, spec: KeySpec, batch: Mapping[str, Any], owner: str) -> None:
    if not isinstance(value, Mapping):
        raise BatchContractError(f"{owner}: batch['{key}'] must be tokenised (input_ids, attention_mask)")
    if "input_ids" not in value:  # per language: {"en": {...}, "de": {...}}
        for language, tokens in value.items():
            _check_tokens(f"{key}.{language}", tokens, spec, batch, owner)
        return
    dims = spec.dims
    if key.split(".")[0] == TEXT:
        dims = _text_dims(value, batch)
    for field in ("input_ids", "attention_mask"):
        if field not in value:
            raise BatchContractError(f"{owner}: batch['{key}'] has no '{field}'")
        _check_tensor(f"{key}.{field}", value[field], dims, "int", owner)


def _text_dims(tokens: Mapping[str, Any], batch: Mapping[str, Any]) -> tuple[str, ...]:
    """(N, L) with ``caption_to_video``; else (B, K, L) when the captions carry a K axis, (B, L)."""
    if CAPTION_TO_VIDEO in batch:
        return ("N", "L")
    ids = tokens.get("input_ids")
    return ("B", "K", "L") if isinstance(ids, torch.Tensor) and ids.ndim == 3 else ("B", "L")


def check_batch(batch: Mapping[str, Any], required: Iterable[str] = (), owner: str = "batch") -> None:
    """Check that ``batch`` has every ``required`` key and that each contract key it has fits.

    Args:
        batch: a collated batch (dict).
        required: keys that must be present.
        owner: who needs them (a method's name), for the error message.

    Raises:
        BatchContractError: naming the key, the owner and what was expected.
    """
    missing = [key for key in required if key not in batch]
    if missing:
        raise MissingBatchKeyError(
            f"{owner} needs batch key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"the batch has {sorted(batch)}"
        )
    for key, value in batch.items():
        spec = CONTRACT.get(key)
        if spec is None:
            continue
        if key == TEXT_LANGUAGE and isinstance(batch.get(TEXT), Mapping):
            dims = _text_dims(batch[TEXT], batch)[:-1]
            _check_tensor(key, value, dims, spec.dtype, owner)
        elif spec.dtype == "tokens":
            _check_tokens(key, value, spec, batch, owner)
        else:
            _check_tensor(key, value, spec.dims, spec.dtype, owner)


def contract_table() -> str:
    """The contract as a Markdown table (rendered in docs/architecture.md)."""
    rows = ["| key | shape | dtype | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.key}` | ({', '.join(s.dims)}) | {s.dtype} | {s.meaning} |" for s in CONTRACT.values()]
    return "\n".join(rows)
