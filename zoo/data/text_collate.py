"""Captions of a batch -> token ids: several captions per video, several languages.

A sample's captions take one of three forms: a string, a list of strings, or a dict ``{language: string or
list of strings}``. Two steps turn them into the batch's text:

1. :func:`select_captions` (in the dataset, with the sample's own generator, so that the draw depends on
   ``(seed, epoch, index)`` only) keeps ``captions_per_video`` of them, in the languages asked for;
2. :func:`tokenize_captions` (at collate time, :class:`CaptionCollate`) tokenizes them into one layout:

| ``captions_per_video`` | ``text["input_ids"]``, ``text["attention_mask"]`` | other keys                                         |
|------------------------|---------------------------------------------------|----------------------------------------------------|
| ``1``                  | int64 ``(B, L)``                                  | ``text_language`` ``(B,)``                         |
| ``K > 1``              | int64 ``(B, K, L)``                               | ``text_language`` ``(B, K)``                       |
| ``"all"``              | int64 ``(N, L)``: every caption, video-major      | ``caption_to_video`` ``(N,)``, ``text_language`` ``(N,)`` |

``caption_to_video`` (int64) is the batch row of each caption's video, as retrieval evaluation needs.

``text_language`` holds indices into ``languages`` and is there only when ``languages`` is given (it then
needs dict captions); without ``languages`` the captions of every language are pooled. A video with fewer
than K captions repeats some (each as evenly as possible), so no caption row is all padding.

Candidates are ordered caption-major across languages (``en[0], de[0], en[1], de[1], ...``, languages in the
order of ``languages``, else of the dict): without a generator the first K are kept, so K = the number of
languages gives one caption per language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import zip_longest
from typing import Any, Literal

import numpy as np
import torch

from zoo.data.text import TextTokenizer
from zoo.errors import UsageError

__all__ = ["CaptionCollate", "Captions", "select_captions", "tokenize_captions"]

Captions = str | list[str] | dict[str, str | list[str]]
CaptionCount = int | Literal["all"]


def _check_count(captions_per_video: CaptionCount) -> None:
    if captions_per_video != "all" and (
        not isinstance(captions_per_video, int)
        or isinstance(captions_per_video, bool)
        or captions_per_video < 1
    ):
        raise UsageError(f"captions_per_video must be an integer >= 1 or 'all', got {captions_per_video!r}")


def _candidates(
    captions: Captions, languages: Sequence[str] | None, where: str
) -> list[tuple[str | None, str]]:
    """``(language, text)`` pairs, caption-major across languages."""
    if isinstance(captions, dict):
        names = list(languages) if languages is not None else list(captions)
        lists = [
            [captions[n]] if isinstance(captions[n], str) else list(captions[n])
            for n in names
            if n in captions
        ]
        names = [n for n in names if n in captions]
        found = [
            (name, text) for row in zip_longest(*lists) for name, text in zip(names, row) if text is not None
        ]
    elif languages is not None:
        raise UsageError(
            f"{where}: languages={list(languages)} needs captions keyed by language, got {captions!r}"
        )
    else:
        found = [(None, text) for text in ([captions] if isinstance(captions, str) else captions)]
    if not found:
        wanted = f" in {', '.join(languages)}" if languages is not None else ""
        raise UsageError(f"{where} has no captions{wanted}")
    for _, text in found:
        if not isinstance(text, str):
            raise UsageError(f"{where}: a caption must be a string, got {text!r}")
    return found


def _pick(count: int, captions_per_video: CaptionCount, rng: np.random.Generator | None) -> list[int]:
    """Indices of the kept candidates: all, the first K, or K drawn (repeating evenly when fewer)."""
    if captions_per_video == "all":
        return list(range(count))
    if rng is None:
        return [i % count for i in range(captions_per_video)]
    rounds = -(-captions_per_video // count)  # ceil
    order = np.concatenate([rng.permutation(count) for _ in range(rounds)])
    return order[:captions_per_video].tolist()


def select_captions(
    captions: Captions,
    captions_per_video: CaptionCount = 1,
    languages: Sequence[str] | None = None,
    rng: np.random.Generator | None = None,
) -> Captions:
    """Keep ``captions_per_video`` of one video's captions (in ``languages``), in the form they came in.

    Args:
        captions: a string, a list of strings, or ``{language: string or list of strings}``.
        captions_per_video: how many to keep, or ``"all"``.
        languages: keep only these languages (dict captions); None keeps all.
        rng: draws the kept captions; None keeps the first ones (see the module docstring).

    Returns:
        A list of strings, or a dict ``{language: list of strings}`` for dict captions. Given to
        :func:`tokenize_captions` with the same count and languages and no generator, it is kept whole.
    """
    _check_count(captions_per_video)
    found = _candidates(captions, languages, "video")
    kept = [found[i] for i in _pick(len(found), captions_per_video, rng)]
    if not isinstance(captions, dict):
        return [text for _, text in kept]
    selected: dict[str, list[str]] = {}
    for name, text in kept:
        selected.setdefault(name, []).append(text)
    return selected


def tokenize_captions(
    samples_text: Sequence[Captions],
    tokenizer: TextTokenizer,
    captions_per_video: CaptionCount = 1,
    languages: Sequence[str] | None = None,
    rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
) -> dict[str, Any]:
    """Tokenize the captions of a batch of B videos into the layout of the module docstring.

    Args:
        samples_text: each video's captions (string, list, or dict by language).
        tokenizer: a :class:`~zoo.data.text.TextTokenizer`.
        captions_per_video: captions per video: ``1`` -> ``(B, L)``, ``K`` -> ``(B, K, L)``, ``"all"`` ->
            ``(N, L)`` with ``caption_to_video``.
        languages: the languages to use, in order; ``text_language`` indexes them. None pools all languages.
        rng: one generator for the batch, or one per video; None keeps the first captions.

    Returns:
        ``{"text": {"input_ids", "attention_mask"}}`` plus ``caption_to_video`` (``"all"``) and
        ``text_language`` (with ``languages``).
    """
    _check_count(captions_per_video)
    rngs = rng if isinstance(rng, Sequence) else [rng] * len(samples_text)
    if len(rngs) != len(samples_text):
        raise ValueError(f"{len(rngs)} generators for {len(samples_text)} videos")
    kept: list[list[tuple[str | None, str]]] = []
    for i, (captions, video_rng) in enumerate(zip(samples_text, rngs)):
        found = _candidates(captions, languages, f"video {i} of the batch")
        kept.append([found[j] for j in _pick(len(found), captions_per_video, video_rng)])
    flat = [pair for pairs in kept for pair in pairs]
    tokens = tokenizer([text for _, text in flat])  # (N, L)
    batch: dict[str, Any] = {}
    if captions_per_video == "all":
        counts = torch.tensor([len(pairs) for pairs in kept])
        batch["caption_to_video"] = torch.repeat_interleave(torch.arange(len(kept)), counts)  # (N,)
        shape: tuple[int, ...] = (len(flat),)
    else:
        shape = (len(kept),) if captions_per_video == 1 else (len(kept), captions_per_video)
    batch["text"] = {key: value.reshape(*shape, value.shape[-1]) for key, value in tokens.items()}
    if languages is not None:
        index = {name: n for n, name in enumerate(languages)}
        batch["text_language"] = torch.tensor([index[name] for name, _ in flat], dtype=torch.long).reshape(
            shape
        )
    return batch


class CaptionCollate:
    """A DataLoader ``collate_fn``: the base collate, then the ``text`` key tokenized (picklable).

    Args:
        tokenizer: a :class:`~zoo.data.text.TextTokenizer`.
        captions_per_video: captions per video (see :func:`tokenize_captions`).
        languages: the languages to use, in order (None: all, pooled).
        collate: the collate of the other keys (default :func:`zoo.data.datasets.collate_samples`).
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        captions_per_video: CaptionCount = 1,
        languages: Sequence[str] | None = None,
        collate: Callable[[Sequence[dict[str, Any]]], dict[str, Any]] | None = None,
    ):
        _check_count(captions_per_video)
        if collate is None:
            from zoo.data.datasets import collate_samples as collate
        self.tokenizer, self.captions_per_video, self.collate = tokenizer, captions_per_video, collate
        self.languages = list(languages) if languages is not None else None

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Collate ``samples``; their ``text`` becomes the token layout of :func:`tokenize_captions`."""
        batch = self.collate(samples)
        if "text" in batch:
            batch.update(
                tokenize_captions(batch.pop("text"), self.tokenizer, self.captions_per_video, self.languages)
            )
        return batch
