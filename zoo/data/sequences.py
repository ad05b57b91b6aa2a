"""Per-frame feature sequences of long videos with frame labels (action segmentation, TOT, CTE).

A sample is one video as a sequence of precomputed per-frame features:

- ``features`` float32 ``(T, D)``; ``segments`` int64 ``(T,)`` (the sub-action of each frame);
- ``frame_indices`` int64 ``(1, T)``: the frame number of each row (one "clip": the batch contract's
  ``(B, K, T)``); ``num_frames``: the video's length, for relative time ``frame_indices / num_frames``;
- ``label``: the activity (complex action) of the video, ``-1`` when the layout has none; ``index``.

``mode="full"`` gives every ``frame_stride``-th frame (variable length: :func:`collate_sequences` pads to the
longest with a mask); ``mode="sorted"`` draws ``num_frames`` frames sorted in time as TOT trains
(``VideoRelTimeDataset.uniform_sample``): the video is cut into ``num_splits`` equal parts of
``floor(T / num_splits)`` frames and ``num_frames / num_splits`` frames are drawn in each, with replacement.
Draws depend on ``(seed, epoch, index)`` only.

Layouts (``root`` is the dataset folder):

- ``"mstcn"`` (MS-TCN: Breakfast, 50 Salads; what :func:`zoo.eval.features.extract_sequence_features` writes):
  ``features/{video}.npy`` stored ``(D, T)``, ``groundTruth/{video}.txt`` (one action name per frame),
  ``mapping.txt`` ("index name"), optional ``splits/{split}.split{fold}.bundle``.
- ``"cte"`` (CTE / TOT: Breakfast, 50 Salads, YouTube Instructions, Desktop Assembly):
  ``features/[{activity}/]{video}.txt`` or ``.npy`` stored ``(T, D)`` (text files hold one frame per row),
  ``groundTruth/{video}`` (no extension, or ``.txt``), ``mapping/mapping.txt``. Sub-folders of ``features``
  name the activities (``label``); ``activity=`` keeps one of them (or, for a flat folder, the videos whose
  name contains it, as CTE selects them). Background (a negative index in the mapping, YouTube Instructions'
  ``-1``) becomes the last class, :attr:`FeatureSequenceDataset.background_label`.

Shards (``zoo data shard --kind features``, :data:`FEATURE_SEQUENCES`) hold each video's feature file (its own
bytes, ``.npy`` or ``.txt``) and, in its JSON, the video id, the frame labels and the activity; the index keeps
the classes, ``feature_dim`` and ``frames_first``.

Pitfalls of the originals, handled here: the two layouts store features transposed from one another (a
wrong ``frames_first`` names the file, the expected and the found shape); CTE silently drops a video whose
ground truth has a label missing from the mapping (here: an error naming the file and the line); feature
files and labels may differ in length by a few frames (both are cut to the shorter when they differ by at
most ``length_tolerance`` frames, else an error names both files).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data.base import EpochSeeded
from zoo.data.formats import ManifestError, parse_action_segmentation
from zoo.data.shards import SampleDecodeError, ShardItem, ShardKind
from zoo.data.video import InMemoryVideo
from zoo.errors import UsageError

__all__ = [
    "FEATURE_SEQUENCES",
    "FeatureFileError",
    "FeatureSequenceDataset",
    "SequenceLengthError",
    "SequenceRecord",
    "collate_sequences",
    "synthmotion_long_videos",
]

LAYOUTS = ("mstcn", "cte")
FEATURE_EXTENSIONS = (".npy", ".txt")


class FeatureFileError(UsageError):
    """A feature file has the wrong shape (names the file, what was expected and what was found)."""


class SequenceLengthError(UsageError):
    """Features and frame labels of a video differ in length by more than the tolerance."""


@dataclass
class SequenceRecord:
    """One long video: its feature file, its per-frame labels and its activity (None: unknown)."""

    video_id: str
    features_path: Path | InMemoryVideo  # in memory: streamed from a shard
    labels_path: Path | str
    frame_labels: np.ndarray  # int64 (num_frames,)
    activity: int | None = None


# ------------------------------------------------------------------------------------------------------
# reading the layouts


def _read_mapping(path: Path) -> tuple[list[str], dict[str, int], int | None]:
    """CTE mapping ("index name"): classes, name -> label, and the background label (None: no background)."""
    if not path.is_file():
        raise FileNotFoundError(f"action mapping {str(path)!r} not found")
    foreground: dict[int, str] = {}
    background: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].lstrip("-").isdigit():
            raise ManifestError(path, f"line {n}", f"expected '<index> <name>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index < 0:
            background.append(name)
        elif index in foreground:
            raise ManifestError(path, f"line {n}", f"index {index} is given twice")
        else:
            foreground[index] = name
    if sorted(foreground) != list(range(len(foreground))):
        raise ManifestError(path, "", f"indices must be 0..{len(foreground) - 1}, each once")
    if len(background) > 1:
        raise ManifestError(path, "", f"one background (negative index) at most, got {background}")
    classes = [foreground[i] for i in range(len(foreground))] + background
    return classes, {name: i for i, name in enumerate(classes)}, len(foreground) if background else None


def _read_frame_labels(path: Path, index: dict[str, int], mapping: Path) -> np.ndarray:
    """One label per line (its first word), each a name of ``mapping``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    labels = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name = line.split()[0]
        if name not in index:
            raise ManifestError(path, f"line {n}", f"label {name!r} is not in {mapping.name} ({mapping})")
        labels.append(index[name])
    if not labels:
        raise ManifestError(path, "", "no frame labels")
    return np.asarray(labels, dtype=np.int64)


def _mstcn_records(root: Path, split: str, fold: int) -> tuple[list[SequenceRecord], list[str]]:
    records, classes = parse_action_segmentation(root, split, fold)
    sequences = []
    for record in records:
        video_id = record.extra["video_id"]
        sequences.append(
            SequenceRecord(
                video_id,
                root / "features" / f"{video_id}.npy",
                root / "groundTruth" / f"{video_id}.txt",
                record.extra["frame_labels"],
            )
        )
    return sequences, classes


def _cte_records(
    root: Path, split: str, fold: int, activity: str | None, mapping_name: str
) -> tuple[list[SequenceRecord], list[str], int | None, list[str]]:
    mapping = root / "mapping" / mapping_name
    classes, index, background = _read_mapping(mapping)
    features_dir = root / "features"
    if not features_dir.is_dir():
        raise FileNotFoundError(f"features folder {str(features_dir)!r} not found")
    files = sorted(p for p in features_dir.rglob("*") if p.suffix in FEATURE_EXTENSIONS and p.is_file())
    folders = sorted({str(p.parent.relative_to(features_dir)) for p in files} - {"."})
    if activity is not None:
        if folders:
            files = [p for p in files if str(p.parent.relative_to(features_dir)) == activity]
        else:
            files = [p for p in files if activity in p.stem]
        if not files:
            raise UsageError(f"no feature files of activity {activity!r} in {features_dir}")
    bundle = root / "splits" / f"{split}.split{fold}.bundle"
    if bundle.is_file():
        listed = {Path(line.strip()).stem for line in bundle.read_text(encoding="utf-8").splitlines()}
        files = [p for p in files if p.stem in listed]
    records = []
    for path in files:
        truth = root / "groundTruth" / path.stem
        truth = truth if truth.is_file() else truth.with_name(f"{path.stem}.txt")
        if not truth.is_file():
            raise FileNotFoundError(f"{path}: no ground truth {str(truth.with_suffix(''))!r} (nor .txt)")
        folder = str(path.parent.relative_to(features_dir))
        records.append(
            SequenceRecord(
                path.stem,
                path,
                truth,
                _read_frame_labels(truth, index, mapping),
                folders.index(folder) if folder in folders else None,
            )
        )
    return records, classes, background, folders


def _feature_shape(path: Path) -> tuple[int, ...] | None:
    """The stored shape of a ``.npy`` file from its header (None for text files: known once read)."""
    if path.suffix != ".npy":
        return None
    if not path.is_file():
        raise FileNotFoundError(f"feature file {str(path)!r} not found")
    return np.load(path, mmap_mode="r").shape


def _load_features(path: Path | InMemoryVideo) -> np.ndarray:
    """The stored array (``.npy`` memory-mapped: only the rows used are read)."""
    if isinstance(path, InMemoryVideo):
        try:
            if str(path).endswith(".npy"):
                return np.load(path.open())
            return np.loadtxt(path.open(), ndmin=2)
        except (ValueError, OSError, EOFError) as err:
            raise SampleDecodeError(f"{path}: not a feature array ({err})") from err
    if not path.is_file():
        raise FileNotFoundError(f"feature file {str(path)!r} not found")
    return np.load(path, mmap_mode="r") if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)


class FeatureSequenceDataset(EpochSeeded, Dataset):
    """Long videos as per-frame feature sequences with segment labels (see the module docstring).

    Args:
        root: the dataset folder; None: ``streamed`` videos, each given with its index to :meth:`load_record`
            (from shards), with ``classes`` and ``feature_dim`` given.
        layout: ``"mstcn"`` or ``"cte"``; None: ``"mstcn"`` when ``root/mapping.txt`` exists, else ``"cte"``.
        split: the split (a ``splits/{split}.split{fold}.bundle``; without split files every video is used).
        fold: the split's fold.
        activity: keep the videos of one activity (``"cte"``).
        feature_dim: the expected D; None: that of the first video.
        frames_first: whether files store ``(T, D)``; None: the layout's convention (``"cte"``: True).
        mode: ``"full"`` sequences or ``"sorted"`` samples of ``num_frames`` frames.
        num_frames: frames drawn per video in ``"sorted"`` mode.
        num_splits: temporal parts of ``"sorted"`` mode (each gives ``num_frames / num_splits`` frames).
        frame_stride: use every ``frame_stride``-th frame (MS-TCN's ``sample_rate``).
        length_tolerance: most frames by which features and labels may differ (both are cut to the shorter).
        mapping_name: the mapping file of the ``"cte"`` layout (50 Salads has one per granularity).
        seed: base of the ``"sorted"`` draws.
        streamed: the number of videos when ``root`` is None.
        classes: the segment classes when ``root`` is None.
    """

    def __init__(
        self,
        root: str | os.PathLike | None,
        layout: Literal["mstcn", "cte"] | None = None,
        split: str = "train",
        fold: int = 1,
        *,
        activity: str | None = None,
        feature_dim: int | None = None,
        frames_first: bool | None = None,
        mode: Literal["full", "sorted"] = "full",
        num_frames: int | None = None,
        num_splits: int = 1,
        frame_stride: int = 1,
        length_tolerance: int = 50,
        mapping_name: str = "mapping.txt",
        seed: int = 0,
        streamed: int = 0,
        classes: Sequence[str] | None = None,
    ) -> None:
        if root is not None:
            root = Path(root).expanduser().resolve()
            if not root.is_dir():
                raise FileNotFoundError(f"dataset root {str(root)!r} does not exist")
            layout = layout or ("mstcn" if (root / "mapping.txt").is_file() else "cte")
        layout = layout or "cte"
        if layout not in LAYOUTS:
            raise UsageError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if mode not in ("full", "sorted"):
            raise UsageError(f"mode must be 'full' or 'sorted', got {mode!r}")
        if mode == "sorted" and (not num_frames or num_splits < 1 or num_frames % num_splits):
            raise UsageError(
                f"mode='sorted' needs num_frames divisible by num_splits, got {num_frames} and {num_splits}"
            )
        if frame_stride < 1:
            raise UsageError(f"frame_stride must be >= 1, got {frame_stride}")
        self.root, self.layout, self.mode = root, layout, mode
        self.num_frames, self.num_splits, self.frame_stride = num_frames, num_splits, frame_stride
        self.length_tolerance = length_tolerance
        self.frames_first = (layout == "cte") if frames_first is None else frames_first
        self.background_label: int | None = None
        self.activities: list[str] = []
        if root is None:
            if feature_dim is None or classes is None:
                raise UsageError("streamed feature sequences need their classes and feature_dim")
            self.records: list[SequenceRecord | None] = [None] * streamed
            self.classes, self.feature_dim = list(classes), feature_dim
            self._init_epoch(seed)
            return
        if layout == "mstcn":
            self.records, self.classes = _mstcn_records(root, split, fold)
        else:
            self.records, self.classes, self.background_label, self.activities = _cte_records(
                root, split, fold, activity, mapping_name
            )
        if not self.records:
            raise UsageError(f"no videos in {root} ({layout} layout, split {split!r})")
        self.feature_dim = feature_dim
        for record in self.records:  # .npy headers: cheap; text files are checked as they are read
            shape = _feature_shape(record.features_path)
            if shape is not None:
                self._check_shape(record, shape)
        if self.feature_dim is None:  # text files only: D from the first one
            self._check_shape(self.records[0], _load_features(self.records[0].features_path).shape)
        self._init_epoch(seed)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _check_shape(self, record: SequenceRecord, shape: tuple[int, ...]) -> int:
        """Check a stored shape against D and the labels; returns the usable number of frames."""
        path, axis = record.features_path, 1 if self.frames_first else 0
        stored = "(T, D)" if self.frames_first else "(D, T)"
        if len(shape) != 2:
            raise FeatureFileError(f"{path}: expected a 2-D {stored} array, got shape {shape}")
        if self.feature_dim is None:
            self.feature_dim = int(shape[axis])
        if shape[axis] != self.feature_dim:
            hint = ""
            if shape[1 - axis] == self.feature_dim:
                hint = f"; it looks transposed: pass frames_first={not self.frames_first}"
            raise FeatureFileError(
                f"{path}: expected feature dimension {self.feature_dim} on axis {axis} of {stored}, "
                f"got shape {shape}{hint}"
            )
        frames, labelled = int(shape[1 - axis]), len(record.frame_labels)
        if abs(frames - labelled) > self.length_tolerance:
            raise SequenceLengthError(
                f"{path} has {frames} frames but {record.labels_path} has {labelled} labels "
                f"(more than length_tolerance={self.length_tolerance} apart)"
            )
        return min(frames, labelled)

    def _positions(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Rows of the strided sequence to return, sorted."""
        if self.mode == "full":
            return np.arange(length)
        part = max(length // self.num_splits, 1)  # TOT: floor(T / num_splits) (at least one frame)
        starts = np.repeat(np.arange(self.num_splits) * part, self.num_frames // self.num_splits)
        return np.minimum(np.sort(starts + rng.integers(part, size=self.num_frames)), length - 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._sample(int(index), self.records[int(index)])

    def load_record(self, index: int, record: SequenceRecord) -> dict[str, Any]:
        """Sample ``index`` of ``record`` (streamed); a :class:`~zoo.data.shards.SampleDecodeError` when its
        features cannot be read or do not fit."""
        try:
            return self._sample(int(index), record)
        except (FeatureFileError, SequenceLengthError) as err:
            raise SampleDecodeError(str(err)) from err

    def _sample(self, index: int, record: SequenceRecord) -> dict[str, Any]:
        stored = _load_features(record.features_path)
        num_frames = self._check_shape(record, stored.shape)
        frames = np.arange(0, num_frames, self.frame_stride)  # the strided sequence
        frames = frames[self._positions(len(frames), self.rng(index))]
        features = stored[frames] if self.frames_first else stored[:, frames].T  # (T, D)
        return {
            "features": torch.as_tensor(np.asarray(features, dtype=np.float32)),
            "segments": torch.from_numpy(record.frame_labels[frames]),
            "frame_indices": torch.from_numpy(frames[None]),
            "num_frames": num_frames,
            "label": -1 if record.activity is None else record.activity,
            "index": index,
        }


def _sequence_item(record: SequenceRecord) -> ShardItem:
    """A video's feature file (its own bytes) and, as annotation, its id, frame labels and activity."""
    meta = {
        "video_id": record.video_id,
        "frame_labels": record.frame_labels.tolist(),
        "activity": record.activity,
    }
    return ShardItem({Path(record.features_path).suffix.lstrip("."): Path(record.features_path)}, meta)


def _sequence_record(members: dict[str, bytes], meta: dict[str, Any], name: str) -> SequenceRecord:
    """The :class:`SequenceRecord` of a stored sample, its features in memory."""
    files = [ext for ext in members if f".{ext}" in FEATURE_EXTENSIONS]
    labels = meta.get("frame_labels")
    if len(files) != 1 or not isinstance(labels, list) or not labels:
        raise SampleDecodeError(f"{name}: expected one feature file and frame labels, got {sorted(members)}")
    return SequenceRecord(
        str(meta.get("video_id")),
        InMemoryVideo(members[files[0]], f"{name}.{files[0]}"),
        f"{name}.json",
        np.asarray(labels, dtype=np.int64),
        meta.get("activity"),
    )


FEATURE_SEQUENCES = ShardKind("features", _sequence_item, _sequence_record)
"""Feature sequences (:class:`SequenceRecord`) in shards: the feature file and the frame labels."""


def collate_sequences(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad to the longest sequence: ``features`` (B, T, D) zeros, ``mask`` (B, T), ``segments`` (B, T) -1.

    Also ``frame_indices`` (B, 1, T) (-1 on padding), ``num_frames``, ``label`` and ``index`` (B,).
    """
    lengths = [len(s["features"]) for s in samples]
    batch_size, longest, dim = len(samples), max(lengths), samples[0]["features"].shape[-1]
    features = torch.zeros(batch_size, longest, dim, dtype=samples[0]["features"].dtype)  # (B, T, D)
    mask = torch.zeros(batch_size, longest, dtype=torch.bool)  # (B, T)
    segments = torch.full((batch_size, longest), -1, dtype=torch.int64)  # (B, T)
    frame_indices = torch.full((batch_size, 1, longest), -1, dtype=torch.int64)  # (B, 1, T)
    for row, (sample, length) in enumerate(zip(samples, lengths)):
        if sample["features"].shape[-1] != dim:
            raise ValueError(
                f"sample {sample['index']} has feature dimension {sample['features'].shape[-1]}, not {dim}"
            )
        features[row, :length] = sample["features"]
        mask[row, :length] = True
        segments[row, :length] = sample["segments"]
        frame_indices[row, :, :length] = sample["frame_indices"]
    return {
        "features": features,
        "mask": mask,
        "segments": segments,
        "frame_indices": frame_indices,
        "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.int64),
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
    }


# ------------------------------------------------------------------------------------------------------
# extraction: long videos -> the "mstcn" layout through any backbone


def synthmotion_long_videos(root: str | os.PathLike) -> tuple[list[Path], list[Path], Path]:
    """SynthMotion's long videos, their frame-label files and the sub-action mapping (from ``long.csv``)."""
    root = Path(root)
    manifest = root / "long.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"SynthMotion long-video manifest {str(manifest)!r} not found")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "labels" not in rows[0]:
        raise ManifestError(manifest, "line 1 (header)", "missing column 'labels'")
    return [root / r["path"] for r in rows], [root / r["labels"] for r in rows], root / "long" / "mapping.txt"
