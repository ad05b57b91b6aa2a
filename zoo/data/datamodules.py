"""DataModules of the sample types beyond clips: feature sequences, documents, image–text pairs, QA, tracklets.

Each is built from a recipe by class name, e.g.::

    data:
      class_path: zoo.data.datamodules.TrackletDataModule
      init_args: {p: 4, k: 4, num_frames: 8}

and shares :class:`~zoo.data.base.ZooDataModule`'s loader options, ``(seed, epoch, index)`` seeding, sharding
over ranks and collate-time tokenisation (``tokenizer``, ``max_text_length``). Every batch follows
:mod:`zoo.data.batch`. Where SynthMotion has the data (QA items, re-ID tracklets) it is the default: leave the
dataset root out and it is generated at ``prepare_data`` (``synth``: :class:`~zoo.data.synthmotion.SynthMotionConfig`
fields; ``synth_root``: where).

Every one reads tar shards instead of files (``shards``, see :class:`~zoo.data.base.ZooDataModule`) written by
``zoo data shard --kind`` (``features``, ``documents``, ``image_text``, ``qa``, ``tracklets``): a sample from a
shard equals the sample from its files. Tracklets stream their query and gallery only: P×K training batches
draw from the whole set by identity, which a stream does not give.

Feature sequences of SynthMotion's long videos take two steps, since extracting features runs a model and the
data layer imports none: first :func:`zoo.eval.features.extract_sequence_features` with
:func:`zoo.data.sequences.synthmotion_long_videos`'s videos, labels and mapping writes the ``"mstcn"`` layout to
a folder; then :class:`FeatureSequenceDataModule` reads that folder (``root``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import DataLoader

from zoo.data.base import Collate, StreamedSamples, ZooDataModule, check_int
from zoo.data.formats import VideoRecord, parse_mars, parse_tvqa
from zoo.data.samplers import RandomClipSampler, UniformClipSampler
from zoo.data.samples import (
    DOCUMENTS,
    DocumentDataset,
    ImageTextDataset,
    MultipleChoiceQADataset,
    PKSampler,
    TrackletDataset,
    collate_documents,
    collate_image_text,
    collate_multiple_choice,
    collate_tracklets,
    read_documents,
    read_image_text,
    synthmotion_qa_records,
    synthmotion_tracklet_records,
)
from zoo.data.sequences import FEATURE_SEQUENCES, FeatureSequenceDataset, collate_sequences
from zoo.data.shards import VIDEO_RECORDS
from zoo.data.synthmotion import CLASSES, COLORS, SHAPES, captions_by_video
from zoo.data.text import DEFAULT_MAX_LENGTH
from zoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from zoo.errors import UsageError

__all__ = [
    "DocumentDataModule",
    "FeatureSequenceDataModule",
    "ImageTextDataModule",
    "MultipleChoiceQADataModule",
    "TrackletDataModule",
]


def _needs_tokenizer(module: ZooDataModule) -> None:
    if module.tokenizer is None:
        raise UsageError(f"{type(module).__name__} needs a tokenizer (e.g. tokenizer: bytes), got None")


# ------------------------------------------------------------------------------------------------------
# per-frame feature sequences of long videos


class FeatureSequenceDataModule(ZooDataModule):
    """Per-frame feature sequences with segment labels (:class:`~zoo.data.sequences.FeatureSequenceDataset`).

    Batches: ``features`` (B, T, D) padded, ``mask`` (B, T), ``segments`` (B, T) (-1 on padding),
    ``frame_indices`` (B, 1, T), ``num_frames``, ``label`` (the activity, -1 when unknown) and ``index`` (B,).
    Training uses ``mode``; validation and test always take full sequences. ``num_classes`` (segment classes)
    and ``feature_dim`` are known right after construction, for linking into the model.

    Args:
        root: the dataset folder (``"mstcn"`` or ``"cte"`` layout; see :mod:`zoo.data.sequences`); None: the
            training split's ``shards``.
        layout: ``"mstcn"`` or ``"cte"``; None: detected.
        train_split: split name of the training videos.
        val_split: split name of the validation videos (None: no validation).
        test_split: split name of the test videos (None: no test).
        fold: the splits' fold.
        activity: keep the videos of one activity (``"cte"``).
        feature_dim: the expected D (None: that of the first video).
        frames_first: whether files store ``(T, D)`` (None: the layout's convention).
        mode: training sequences, ``"full"`` or ``"sorted"`` (``num_frames`` frames sorted in time, as TOT).
        num_frames: frames per training video in ``"sorted"`` mode.
        num_splits: temporal parts of ``"sorted"`` mode.
        frame_stride: use every ``frame_stride``-th frame.
        length_tolerance: most frames by which features and labels may differ.
        mapping_name: the mapping file of the ``"cte"`` layout.
        on_error: from shards, ``skip`` an unreadable sample (counted, named in the warning) or ``raise``.
        max_error_fraction: from shards, the run stops once more than this fraction of samples failed.
        error_log: from shards, a file to which every unreadable sample appends one JSON line.
        batch_size: videos per batch.
        drop_last: drop the last incomplete training batch.
        **loader_options: ``num_workers``, ``persistent_workers``, ``pin_memory``, ``seed`` (of the ``"sorted"``
            draws), ``shards``: see :class:`~zoo.data.base.ZooDataModule`.
    """

    shard_kind = FEATURE_SEQUENCES

    def __init__(
        self,
        root: str | None = None,
        layout: Literal["mstcn", "cte"] | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = "test",
        fold: int = 1,
        activity: str | None = None,
        feature_dim: int | None = None,
        frames_first: bool | None = None,
        mode: Literal["full", "sorted"] = "full",
        num_frames: int | None = None,
        num_splits: int = 1,
        frame_stride: int = 1,
        length_tolerance: int = 50,
        mapping_name: str = "mapping.txt",
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
        **loader_options: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            drop_last=drop_last,
            tokenizer=None,  # no text
            max_text_length=DEFAULT_MAX_LENGTH,
            **loader_options,
        )
        self.save_hyperparameters()
        if root is None and "train" not in self.shards:
            raise UsageError("FeatureSequenceDataModule needs a root folder or training shards")
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self._dataset("train")  # checks the arguments and the files now; gives the classes and D

    def has_split(self, split: str) -> bool:
        return self.hparams.root is not None and self.splits.get(split) is not None

    def build_dataset(self, split: str) -> FeatureSequenceDataset:
        hp = self.hparams
        return self._sequences(split, hp.root, split=self.splits[split], frames_first=hp.frames_first)

    def build_shard_decoder(self, split: str, records: list[VideoRecord]) -> StreamedSamples:
        index = self.shard_index(split)
        info = index.info
        if split != "train" and (index.classes, info["feature_dim"]) != (self.classes, self.feature_dim):
            raise UsageError(
                f"{index.source}: classes {index.classes} and feature_dim {info['feature_dim']} differ from the "
                f"training data's ({self.classes}, {self.feature_dim})"
            )
        dataset = self._sequences(
            split, None, streamed=len(records), classes=index.classes, frames_first=info["frames_first"]
        )
        return self._streamed(dataset, records)

    def _sequences(self, stage: str, root: str | None, **source: Any) -> FeatureSequenceDataset:
        """The sequences of split ``stage`` from ``root`` (None: streamed), with the module's options."""
        hp = self.hparams
        train = stage == "train"
        return FeatureSequenceDataset(
            root,
            hp.layout,
            fold=hp.fold,
            activity=hp.activity,
            feature_dim=hp.feature_dim if train and root is not None else self.feature_dim,
            mode=hp.mode if train else "full",
            num_frames=hp.num_frames if train else None,
            num_splits=hp.num_splits if train else 1,
            frame_stride=hp.frame_stride,
            length_tolerance=hp.length_tolerance,
            mapping_name=hp.mapping_name,
            seed=self.seed,
            **source,
        )

    def collate_fn(self, split: str) -> Collate:
        return collate_sequences

    def shard_source(self, split: str) -> tuple[list[Any], list[str]]:
        dataset = self._dataset(split)
        return dataset.records, dataset.classes

    def shard_info(self, split: str) -> dict[str, Any]:
        dataset = self._dataset(split)
        return {"feature_dim": dataset.feature_dim, "frames_first": dataset.frames_first}

    @property
    def classes(self) -> list[str]:
        """Segment (sub-action) classes; a background class is the last one."""
        if "train" in self.shards:
            return self.shard_index("train").classes
        return self.datasets["train"].classes

    @property
    def feature_dim(self) -> int:
        """D of the features."""
        if "train" in self.shards:
            return int(self.shard_index("train").info["feature_dim"])
        return self.datasets["train"].feature_dim


# ------------------------------------------------------------------------------------------------------
# documents


class DocumentDataModule(ZooDataModule):
    """Documents (text only) with DeCLUTR's anchor and positive spans (:class:`~zoo.data.samples.DocumentDataset`).

    Batches (tokenised at collate time): ``text`` (N, L) the N = B·A anchors, ``caption_to_video`` (N,) the
    document of each, ``positives`` (N·P, L) anchor-major, ``index`` (B,); with ``num_anchors: null``, ``text``
    (B, L) whole documents.

    Without ``train_file`` the documents are SynthMotion's clips (generated at ``prepare_data``): one document
    per clip of the split, its captions in ``caption_languages`` joined with spaces (paraphrases of one
    clip from several templates, so spans of one document describe one clip).

    Args:
        train_file: a text file (one document per line) or a JSONL file (field ``text``); None: SynthMotion.
        val_file: the same for validation (None: no validation).
        test_file: the same for test (None: no test).
        num_anchors: anchors per document (DeCLUTR: 2); None: whole documents.
        num_positives: positives per anchor (DeCLUTR: 2).
        max_span_len: longest span in the tokenizer's tokens, special tokens not counted (DeCLUTR: 512).
        min_span_len: shortest span in the tokenizer's tokens (DeCLUTR: 32).
        sampling_strategy: where positives lie: None (anywhere near the anchor), ``"subsuming"`` or ``"adjacent"``.
        tokenizer: the tokenizer of anchors and positives (:func:`zoo.data.text.build_tokenizer`).
        max_text_length: most tokens per span, special tokens included.
        caption_languages: SynthMotion's caption languages that make its documents.
        on_error: from shards, ``skip`` an unreadable document (counted, named in the warning) or ``raise``.
        max_error_fraction: from shards, the run stops once more than this fraction of documents failed.
        error_log: from shards, a file to which every unreadable document appends one JSON line.
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields of the generated SynthMotion set.
        synth_root: where to write SynthMotion (default: :func:`~zoo.data.synthmotion.default_root`).
        **loader_options: ``batch_size`` (documents), ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``drop_last``, ``seed`` (of the span draws), ``shards``: see :class:`~zoo.data.base.ZooDataModule`.
    """

    shard_kind = DOCUMENTS

    def __init__(
        self,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        num_anchors: int | None = 2,
        num_positives: int = 2,
        max_span_len: int = 512,
        min_span_len: int = 32,
        sampling_strategy: Literal["subsuming", "adjacent"] | None = None,
        tokenizer: str | dict[str, Any] = "bytes",
        max_text_length: int = 512,
        caption_languages: Sequence[str] = ("en",),
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length, **loader_options)
        self.save_hyperparameters()
        _needs_tokenizer(self)
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        if train_file is None and not self.shards:
            self.use_synth(synth, synth_root)
            self.files = {"train": "train", "val": "val", "test": "test"}
        else:
            self._dataset("train", required=False)  # checks the span arguments and reads the documents now

    def has_split(self, split: str) -> bool:
        if self.synth is not None:
            return getattr(self.synth.config, f"{split}_per_class", 0) > 0
        return self.files.get(split) is not None

    def build_dataset(self, split: str) -> DocumentDataset:
        source = self.files[split]
        if self.synth is not None:
            source = synthmotion_documents(self.synth.folder, split, self.hparams.caption_languages)
        return self._documents(source)

    def shard_source(self, split: str) -> tuple[list[str], None]:
        """Every document of ``split``, also those too short for this DataModule's spans (a reader with other
        spans may use them; one with these counts them as unreadable)."""
        if self.synth is not None:
            return synthmotion_documents(self.synth.folder, split, self.hparams.caption_languages), None
        return [text for text, _ in read_documents(self.files[split])], None

    def build_shard_decoder(self, split: str, records: list[VideoRecord]) -> StreamedSamples:
        return self._streamed(self._documents(None, streamed=len(records)), records)

    def _documents(self, source: Any, streamed: int = 0) -> DocumentDataset:
        hp = self.hparams
        return DocumentDataset(
            source,
            streamed=streamed,
            num_anchors=hp.num_anchors,
            num_positives=hp.num_positives,
            max_span_len=hp.max_span_len,
            min_span_len=hp.min_span_len,
            sampling_strategy=hp.sampling_strategy,
            span_tokenizer=self.tokenizer,
            seed=self.seed,
        )

    def collate_fn(self, split: str) -> Collate:
        return partial(collate_documents, tokenize=self.tokenizer)


def synthmotion_documents(root: str | Path, split: str, languages: Sequence[str]) -> list[str]:
    """One document per SynthMotion clip of ``split``: its captions in ``languages``, joined with spaces."""
    captions = captions_by_video(root)
    with open(Path(root) / f"{split}.csv", encoding="utf-8", newline="") as f:
        stems = [Path(row["path"]).stem for row in csv.DictReader(f)]
    return [" ".join(c for lang in languages for c in captions.get(stem, {}).get(lang, [])) for stem in stems]


# ------------------------------------------------------------------------------------------------------
# image–text pairs with multi-hot labels


class ImageTextDataModule(ZooDataModule):
    """Image–text pairs with multi-hot labels (:class:`~zoo.data.samples.ImageTextDataset`).

    Batches: ``image`` (B, C, H, W), ``text`` tokens (B, L), ``multilabel`` (B, num_classes), ``index`` (B,).
    The classes (``classes.txt`` beside the training manifest) are known right after construction.

    Without ``train_manifest`` the pairs are SynthMotion's clips (generated at ``prepare_data``,
    :func:`synthmotion_image_text`): the first frame of each clip, its English captions (one drawn per
    sample) and its shape, colour and motion as three labels.

    Args:
        train_manifest: JSONL or CSV pairs (:func:`~zoo.data.samples.read_image_text`); None: SynthMotion.
        val_manifest: the same for validation (None: no validation); same classes.
        test_manifest: the same for test (None: no test); same classes.
        size: image side after the transform, pixels.
        train_transform: training preset of :func:`~zoo.data.transforms.build_transform` (a name or a
            ``{"name": ..., ...}`` mapping).
        eval_transform: validation and test preset, in the same form.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        tokenizer: the tokenizer of the texts (:func:`zoo.data.text.build_tokenizer`).
        max_text_length: most tokens per text, special tokens included.
        on_error: ``skip`` an unreadable image (counted, path in the warning) or ``raise``.
        max_error_fraction: the run stops once more than this fraction of images failed.
        error_log: a file to which every unreadable image appends one JSON line.
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields of the generated SynthMotion set.
        synth_root: where to write SynthMotion (default: :func:`~zoo.data.synthmotion.default_root`).
        **loader_options: ``batch_size`` (pairs), ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``drop_last``, ``seed`` (of the augmentation), ``shards``: see :class:`~zoo.data.base.ZooDataModule`.
    """

    shard_kind = dataclasses.replace(VIDEO_RECORDS, name="image_text")

    def __init__(
        self,
        train_manifest: str | None = None,
        val_manifest: str | None = None,
        test_manifest: str | None = None,
        size: int = 224,
        train_transform: str | dict[str, Any] = "train",
        eval_transform: str | dict[str, Any] = "eval",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        tokenizer: str | dict[str, Any] = "bytes",
        max_text_length: int = DEFAULT_MAX_LENGTH,
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length, **loader_options)
        self.save_hyperparameters()
        _needs_tokenizer(self)
        self.manifests = {"train": train_manifest, "val": val_manifest, "test": test_manifest}
        for split in ("train", "val", "test"):
            self._transform(split)  # a bad preset is an error now
        if train_manifest is None and self.shards:
            self._pairs = {}
            self._classes = self.shard_index(next(iter(self.shards))).classes
        elif train_manifest is None:
            self.use_synth(synth, synth_root)
            self.manifests = {"train": "train", "val": "val", "test": "test"}
            self._classes = synthmotion_image_text_classes(self.synth.config.num_classes)
            self._pairs = {}
        else:
            self._pairs = {"train": read_image_text(train_manifest)}
            self._classes = self._pairs["train"][1]

    def _transform(self, split: str):
        hp = self.hparams
        preset = hp.train_transform if split == "train" else hp.eval_transform
        return build_transform(preset, size=hp.size, mean=hp.mean, std=hp.std)

    def has_split(self, split: str) -> bool:
        if self.synth is not None:
            return getattr(self.synth.config, f"{split}_per_class", 0) > 0
        return self.manifests.get(split) is not None

    def shard_source(self, split: str) -> tuple[list[VideoRecord], list[str]]:
        if self.synth is not None:
            records, classes = synthmotion_image_text(self.synth.folder, split), self.classes
        else:
            records, classes = self._pairs.get(split) or read_image_text(self.manifests[split])
        if classes != self.classes:
            raise UsageError(
                f"{self.manifests[split]}: classes {classes} differ from the training manifest's {self.classes}"
            )
        return records, classes

    def build_dataset(self, split: str) -> ImageTextDataset:
        return self._pairs_dataset(split, *self.shard_source(split))

    def build_shard_decoder(self, split: str, records: list[VideoRecord]) -> ImageTextDataset:
        index = self.shard_index(split)
        if index.classes != self.classes:
            raise UsageError(f"{index.source}: classes {index.classes} differ from the training data's")
        return self._pairs_dataset(split, records, self.classes, streamed=True)

    def _pairs_dataset(
        self, split: str, records: list[VideoRecord], classes: list[str], streamed: bool = False
    ) -> ImageTextDataset:
        hp = self.hparams
        return ImageTextDataset(
            (records, classes),
            self._transform(split),
            seed=self.seed,
            on_error=hp.on_error,
            max_error_fraction=hp.max_error_fraction,
            error_log=hp.error_log,
            streamed=streamed,
        )

    def collate_fn(self, split: str) -> Collate:
        return partial(collate_image_text, tokenize=self.tokenizer)

    @property
    def classes(self) -> list[str]:
        """Label names (``classes.txt`` of the training manifest, else ``"0"``, ``"1"``, ...)."""
        return self._classes


def synthmotion_image_text_classes(num_motions: int) -> list[str]:
    """The labels of SynthMotion's image–text pairs: ``shape:*``, ``color:*``, then the first ``num_motions``
    ``motion:*`` classes."""
    return (
        [f"shape:{s}" for s in SHAPES]
        + [f"color:{c}" for c in COLORS]
        + [f"motion:{m}" for m in CLASSES[:num_motions]]
    )


def synthmotion_image_text(root: str | Path, split: str) -> list[VideoRecord]:
    """One image–text pair per SynthMotion clip of ``split``: the clip (its first frame is the image), its
    English captions and the multi-hot labels of its shape, colour and motion (``extra["multilabel"]``)."""
    root = Path(root)
    captions = captions_by_video(root)
    motions = json.loads((root / "synthmotion.json").read_text(encoding="utf-8"))["classes"]
    classes = synthmotion_image_text_classes(len(motions))
    records = []
    with open(root / f"{split}.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            path = root / row["path"]
            multilabel = np.zeros(len(classes), dtype=np.float32)
            for name in (f"shape:{row['shape']}", f"color:{row['color']}", f"motion:{row['label_name']}"):
                multilabel[classes.index(name)] = 1.0
            texts = captions.get(path.stem, {}).get("en") or [row["caption"]]
            records.append(VideoRecord(path, None, caption=texts, extra={"multilabel": multilabel}))
    return records


# ------------------------------------------------------------------------------------------------------
# multiple-choice QA


class MultipleChoiceQADataModule(ZooDataModule):
    """Multiple-choice QA items (:class:`~zoo.data.samples.MultipleChoiceQADataset`): TVQA, or SynthMotion's.

    Batches: ``text`` tokens (B, L) of the questions, ``answers`` tokens (B, A, L) of ``question + separator +
    answer``, ``answer`` (B,) (-1 where unknown, e.g. TVQA's public test), ``index`` (B,); with ``video``, the
    clip too (``video`` (B, C, T, H, W), ``frame_indices``).

    Args:
        root: the TVQA folder (``tvqa_{split}.jsonl``, ``videos/``); None: SynthMotion's ``qa.jsonl``.
        video_dir: TVQA's video folder when it is not ``root/videos``.
        train_split: split name of the training items.
        val_split: split name of the validation items (None: no validation).
        test_split: split name of the test items (None: no test).
        video: items carry their clip.
        num_frames: frames per clip.
        stride: frames between two sampled frames of a clip.
        size: clip side after the transform, pixels.
        separator: between the question and each answer in ``answers``.
        tokenizer: the tokenizer of questions and answers (:func:`zoo.data.text.build_tokenizer`).
        max_text_length: most tokens per text, special tokens included.
        on_error: ``skip`` an unreadable video (counted, path in the warning) or ``raise``.
        max_error_fraction: the run stops once more than this fraction of videos failed.
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields of the generated SynthMotion set.
        synth_root: where to write SynthMotion (default: :func:`~zoo.data.synthmotion.default_root`).
        **loader_options: ``batch_size`` (items), ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``drop_last``, ``seed`` (of the clip sampling and augmentation), ``shards`` (they hold the clips
            also when ``video`` is off): see :class:`~zoo.data.base.ZooDataModule`.
    """

    shard_kind = dataclasses.replace(VIDEO_RECORDS, name="qa")

    def __init__(
        self,
        root: str | None = None,
        video_dir: str | None = None,
        train_split: str = "train",
        val_split: str | None = "val",
        test_split: str | None = "test",
        video: bool = False,
        num_frames: int = 8,
        stride: float = 2.0,
        size: int = 64,
        separator: str = " ",
        tokenizer: str | dict[str, Any] = "bytes",
        max_text_length: int = DEFAULT_MAX_LENGTH,
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(tokenizer=tokenizer, max_text_length=max_text_length, **loader_options)
        self.save_hyperparameters()
        _needs_tokenizer(self)
        if root is None and not self.shards:
            self.use_synth(synth, synth_root, needs={"qa_per_clip": 1})
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        for split in ("train", "val", "test"):
            self._sampler(split)  # a bad clip geometry is an error now
            self._transform(split)

    def _sampler(self, split: str):
        hp = self.hparams
        sampler = RandomClipSampler if split == "train" else UniformClipSampler
        return sampler(num_frames=hp.num_frames, stride=hp.stride)

    def _transform(self, split: str):
        # every split sees the whole frame, never flipped: answers name directions ("to the left",
        # "clockwise") and a random crop can cut out the object a question asks about
        return build_transform("eval", size=self.hparams.size, short_side=self.hparams.size)

    def has_split(self, split: str) -> bool:
        if self.splits.get(split) is None:
            return False
        if self.synth is None:
            return self.hparams.root is not None
        return getattr(self.synth.config, f"{split}_per_class", 0) > 0

    def records(self, split: str) -> list[VideoRecord]:
        """The QA items of ``split``."""
        if self.synth is not None:
            return synthmotion_qa_records(self.synth.folder, self.splits[split])
        return parse_tvqa(Path(self.hparams.root), self.splits[split], self.hparams.video_dir).records

    def build_dataset(self, split: str) -> MultipleChoiceQADataset:
        return self._items(split, self.records(split))

    def build_shard_decoder(self, split: str, records: list[VideoRecord]) -> Any:
        items = self._items(split, records, streamed=True)
        if self.hparams.video:
            return items
        return self._streamed(items, records)

    def _items(
        self, split: str, records: list[VideoRecord], streamed: bool = False
    ) -> MultipleChoiceQADataset:
        hp = self.hparams
        if not hp.video:
            return MultipleChoiceQADataset(records, seed=self.seed, streamed=streamed)
        return MultipleChoiceQADataset(
            records,
            self._sampler(split),
            self._transform(split),
            seed=self.seed,
            streamed=streamed,
            on_error=hp.on_error,
            max_error_fraction=hp.max_error_fraction,
        )

    def shard_source(self, split: str) -> tuple[list[VideoRecord], None]:
        return self.records(split), None

    def collate_fn(self, split: str) -> Collate:
        return partial(collate_multiple_choice, tokenize=self.tokenizer, separator=self.hparams.separator)


# ------------------------------------------------------------------------------------------------------
# tracklets (video re-identification)


class TrackletDataModule(ZooDataModule):
    """Tracklets with identity and camera (:class:`~zoo.data.samples.TrackletDataset`): MARS, or SynthMotion's.

    Training batches hold P identities × K tracklets (:class:`~zoo.data.samples.PKSampler`, split across ranks;
    Lightning keeps it under DDP whatever ``use_distributed_sampler``, see :mod:`zoo.data.base`). Validation
    and test are two loaders: ``dataloader_idx`` 0 the query tracklets, 1 the gallery. Batches: ``video``
    (B, C, T, H, W), ``identity``, ``camera``, ``label`` (the identity's index among the split's identities),
    ``index`` (B,), ``frame_indices`` (B, 1, T).

    Args:
        root: the MARS folder (``bbox_train``, ``bbox_test``; see :func:`~zoo.data.formats.parse_mars`); None:
            SynthMotion's re-ID tracklets.
        fps: frame rate of MARS's frame folders.
        p: identities per training batch.
        k: tracklets per identity in a training batch.
        num_frames: frames per tracklet clip (a shorter tracklet loops).
        stride: frames between two sampled frames.
        size: clip side after the transform, pixels.
        train_transform: training preset of :func:`~zoo.data.transforms.build_transform` (a name or a
            ``{"name": ..., ...}`` mapping).
        eval_transform: query and gallery preset, in the same form.
        on_error: ``skip`` an unreadable tracklet (counted, path in the warning) or ``raise``.
        max_error_fraction: the run stops once more than this fraction of tracklets failed.
        error_log: a file to which every unreadable tracklet appends one JSON line.
        synth: :class:`~zoo.data.synthmotion.SynthMotionConfig` fields of the generated SynthMotion set.
        synth_root: where to write SynthMotion (default: :func:`~zoo.data.synthmotion.default_root`).
        **loader_options: ``batch_size`` (tracklets per query or gallery batch; training batches are P·K),
            ``num_workers``, ``persistent_workers``, ``pin_memory``, ``seed`` (of the PK batches, clip sampling
            and augmentation), ``shards`` (``{query: ..., gallery: ...}``; training reads files): see
            :class:`~zoo.data.base.ZooDataModule`. Nothing is dropped.
    """

    shard_kind = dataclasses.replace(VIDEO_RECORDS, name="tracklets")

    def __init__(
        self,
        root: str | None = None,
        fps: float = 25.0,
        p: int = 4,
        k: int = 4,
        num_frames: int = 8,
        stride: float = 1.0,
        size: int = 64,
        train_transform: str | dict[str, Any] = "train",
        eval_transform: str | dict[str, Any] = "eval",
        on_error: Literal["skip", "raise"] = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | None = None,
        synth: dict[str, Any] | None = None,
        synth_root: str | None = None,
        **loader_options: Any,
    ) -> None:
        super().__init__(
            drop_last=False, tokenizer=None, max_text_length=DEFAULT_MAX_LENGTH, **loader_options
        )
        self.save_hyperparameters()
        check_int("p", p, 1)
        check_int("k", k, 1)
        if "train" in self.shards:
            raise UsageError(
                "TrackletDataModule cannot train from shards: a P×K batch draws K tracklets of each of P "
                "identities from the whole set, which a stream does not give; give shards for query and gallery"
            )
        if root is None:
            self.use_synth(synth, synth_root, needs={"reid_identities": 2})
        for split in ("train", "query"):
            self._sampler(split)  # a bad clip geometry or preset is an error now
            self._transform(split)

    def _sampler(self, split: str):
        hp = self.hparams
        sampler = RandomClipSampler if split == "train" else UniformClipSampler
        return sampler(num_frames=hp.num_frames, stride=hp.stride, short_video="loop")

    def _transform(self, split: str):
        hp = self.hparams
        return build_transform(hp.train_transform if split == "train" else hp.eval_transform, size=hp.size)

    def splits_of(self, stage: str | None) -> tuple[str, ...]:
        return {"validate": ("query", "gallery"), "test": ("query", "gallery")}.get(
            stage, ("train", "query", "gallery")
        )

    def has_split(self, split: str) -> bool:
        return split in ("train", "query", "gallery")

    def records(self, split: str) -> list[VideoRecord]:
        """The tracklets of ``split`` (``train``, ``query`` or ``gallery``)."""
        if self.synth is not None:
            return synthmotion_tracklet_records(self.synth.folder, split)
        return parse_mars(Path(self.hparams.root), split, self.hparams.fps).records

    def build_dataset(self, split: str) -> TrackletDataset:
        return self._tracklets(split, self.records(split))

    def build_shard_decoder(self, split: str, records: list[VideoRecord]) -> TrackletDataset:
        return self._tracklets(split, records, streamed=True)

    def _tracklets(self, split: str, records: list[VideoRecord], streamed: bool = False) -> TrackletDataset:
        hp = self.hparams
        return TrackletDataset(
            records,
            self._sampler(split),
            self._transform(split),
            seed=self.seed,
            streamed=streamed,
            on_error=hp.on_error,
            max_error_fraction=hp.max_error_fraction,
            error_log=hp.error_log,
        )

    def shard_source(self, split: str) -> tuple[list[VideoRecord], None]:
        return self.records(split), None

    def collate_fn(self, split: str) -> Collate:
        return collate_tracklets

    @property
    def classes(self) -> list[str]:
        """The training identities (as text), one class each for an identity classifier."""
        if self.synth is not None and "train" not in self.datasets:
            return [str(i) for i in range(self.synth.config.reid_identities // 2)]  # the first half trains
        return [str(i) for i in sorted(set(self._train().identities))]

    def _train(self) -> TrackletDataset:
        return self._dataset("train")

    def train_dataloader(self) -> DataLoader:
        world, rank = self._world()
        batches = PKSampler(
            self._train().identities, self.hparams.p, self.hparams.k, self.seed, num_replicas=world, rank=rank
        )
        return self._loader("train", shuffle=True, batch_sampler=batches)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader("query", shuffle=False), self._loader("gallery", shuffle=False)]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()
