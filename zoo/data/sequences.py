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

- ``"mstcn"`` (MS-TCN: Breakfast, 50 Salads; what :func:`extract_sequence_features` writes):
  ``features/{video}.npy`` stored ``(D, T)``, ``groundTruth/{video}.txt`` (one action name per frame),
  ``mapping.txt`` ("index name"), optional ``splits/{split}.split{fold}.bundle``.
- ``"cte"`` (CTE / TOT: Breakfast, 50 Salads, YouTube Instructions, Desktop Assembly):
  ``features/[{activity}/]{video}.txt`` or ``.npy`` stored ``(T, D)`` (text files hold one frame per row),
  ``groundTruth/{video}`` (no extension, or ``.txt``), ``mapping/mapping.txt``. Sub-folders of ``features``
  name the activities (``label``); ``activity=`` keeps one of them (or, for a flat folder, the videos whose
  name contains it, as CTE selects them). Background (a negative index in the mapping, YouTube Instructions'
  ``-1``) becomes the last class, :attr:`FeatureSequenceDataset.background_label`.

Pitfalls of the originals, handled here: the two layouts store features transposed from one another (a
wrong ``frames_first`` names the file, the expected and the found shape); CTE silently drops a video whose
ground truth has a label missing from the mapping (here: an error naming the file and the line); feature
files and labels may differ in length by a few frames (both are cut to the shorter when they differ by at
most ``length_tolerance`` frames, else an error names both files).
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from zoo.data.formats import ManifestError, parse_action_segmentation
from zoo.data.samples import EpochSeeded
from zoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Compose, Normalize, ToFloat
from zoo.data.video import VideoReader
from zoo.errors import UsageError

__all__ = [
    "FeatureFileError",
    "FeatureSequenceDataset",
    "SequenceLengthError",
    "SequenceRecord",
    "collate_sequences",
    "extract_sequence_features",
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
    features_path: Path
    labels_path: Path
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


def _load_features(path: Path) -> np.ndarray:
    """The stored array (``.npy`` memory-mapped: only the rows used are read)."""
    if not path.is_file():
        raise FileNotFoundError(f"feature file {str(path)!r} not found")
    return np.load(path, mmap_mode="r") if path.suffix == ".npy" else np.loadtxt(path, ndmin=2)


class FeatureSequenceDataset(EpochSeeded, Dataset):
    """Long videos as per-frame feature sequences with segment labels (see the module docstring).

    Args:
        root: the dataset folder.
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
    """

    def __init__(
        self,
        root: str | os.PathLike,
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
    ) -> None:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset root {str(root)!r} does not exist")
        layout = layout or ("mstcn" if (root / "mapping.txt").is_file() else "cte")
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
        index = int(index)
        record = self.records[index]
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


def _embed(backbone: nn.Module | Callable, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logits features (N, D) of a zoo backbone; any other callable: its output."""
    if hasattr(backbone, "forward_features") and hasattr(backbone, "forward_head"):
        return backbone.forward_head(backbone.forward_features(x), pre_logits=True)
    return backbone(x)


def _windows(positions: np.ndarray, clip_frames: int, clip_stride: int, num_frames: int) -> np.ndarray:
    """Frames of the window centred on each position (clamped to the video): (N, clip_frames)."""
    offsets = (np.arange(clip_frames) - clip_frames // 2) * clip_stride
    return np.clip(positions[:, None] + offsets[None], 0, num_frames - 1)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


@torch.no_grad()
def extract_sequence_features(
    backbone: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    video_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    label_files: Sequence[str | os.PathLike] | None = None,
    mapping_file: str | os.PathLike | None = None,
    clip_frames: int | None = None,
    clip_stride: int = 1,
    frame_stride: int = 1,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    decode_backend: str | None = None,
    progress: bool = True,
) -> Path:
    """Per-frame features of long videos, written in the ``"mstcn"`` layout that the dataset reads.

    Writes ``out_dir/features/{stem}.npy`` float32 ``(D, T)`` with one column per ``frame_stride``-th frame,
    and, with ``label_files``, ``groundTruth/{stem}.txt`` (the labels of those frames) and ``mapping.txt``.

    Args:
        backbone: a zoo backbone (its pooled pre-logits features) or any callable returning (N, D).
        video_paths: the long videos.
        out_dir: where to write the layout.
        label_files: one per video: an action name per frame (as many lines as the video has frames).
        mapping_file: the "index name" mapping of the labels, copied to ``out_dir/mapping.txt``.
        clip_frames: None for an image backbone (one frame, (N, C, H, W)); else a video backbone gets
            ``clip_frames`` frames centred on each frame, (N, C, T, H, W).
        clip_stride: frames between the frames of a window.
        frame_stride: a feature for every ``frame_stride``-th frame.
        transform: uint8 (N, T, H, W, C) -> float (N, C, T, H, W); default ToFloat + ImageNet Normalize.
        batch_size: windows per forward pass.
        device: where the backbone runs (default: where its parameters are).
        decode_backend: passed to :class:`zoo.data.video.VideoReader`.
        progress: show a progress bar over the frames.

    Returns:
        ``out_dir``.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out_dir = Path(out_dir)
    video_paths = [Path(p) for p in video_paths]
    if label_files is not None and len(label_files) != len(video_paths):
        raise UsageError(f"{len(label_files)} label files for {len(video_paths)} videos")
    if (label_files is None) != (mapping_file is None):
        raise UsageError("label_files and mapping_file go together")
    if (clip_frames is not None and clip_frames < 1) or frame_stride < 1 or clip_stride < 1:
        raise UsageError("clip_frames, clip_stride and frame_stride must be >= 1")
    stems = [p.stem for p in video_paths]
    if len(set(stems)) != len(stems):
        raise UsageError("two videos have the same file name; features are named after it")
    transform = transform or Compose([ToFloat(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    if isinstance(backbone, nn.Module):
        was_training = backbone.training
        backbone.eval()
        if device is None:
            device = next(iter(backbone.parameters()), torch.empty(0)).device
    device = torch.device(device or "cpu")
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    lengths = []
    for path in video_paths:
        with VideoReader(path, backend=decode_backend) as reader:
            lengths.append(reader.metadata.num_frames)
    columns = (TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("frames", total=sum(len(range(0, n, frame_stride)) for n in lengths))
            for k, (path, num_frames) in enumerate(zip(video_paths, lengths)):
                positions = np.arange(0, num_frames, frame_stride)
                if label_files is not None:
                    labels = Path(label_files[k]).read_text(encoding="utf-8").split()
                    if len(labels) != num_frames:
                        raise SequenceLengthError(
                            f"{path} has {num_frames} frames but {label_files[k]} has {len(labels)} labels"
                        )
                chunks = []
                with VideoReader(path, backend=decode_backend) as reader:
                    for first in range(0, len(positions), batch_size):
                        windows = _windows(
                            positions[first : first + batch_size], clip_frames or 1, clip_stride, num_frames
                        )
                        frames = reader.get_frames(windows.reshape(-1))  # (N*T, H, W, C) uint8
                        clips = transform(
                            frames.reshape(*windows.shape, *frames.shape[1:])
                        )  # (N, C, T, H, W)
                        clips = clips.to(device)
                        embedded = _embed(backbone, clips[:, :, 0] if clip_frames is None else clips)
                        if embedded.ndim != 2:
                            raise UsageError(
                                f"the backbone must return (N, D) features, got shape {tuple(embedded.shape)}"
                            )
                        chunks.append(embedded.float().cpu())
                        bar.advance(task, len(windows))
                features = torch.cat(chunks).T.contiguous().numpy()  # (D, T)
                _save_atomic(out_dir / "features" / f"{path.stem}.npy", features)
                if label_files is not None:
                    (out_dir / "groundTruth").mkdir(exist_ok=True)
                    text = "".join(f"{labels[i]}\n" for i in positions)
                    (out_dir / "groundTruth" / f"{path.stem}.txt").write_text(text, encoding="utf-8")
    finally:
        if isinstance(backbone, nn.Module) and was_training:
            backbone.train()
    if mapping_file is not None:
        shutil.copyfile(mapping_file, out_dir / "mapping.txt")
    return out_dir
