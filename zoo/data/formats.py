"""Dataset layouts -> a list of :class:`VideoRecord` plus class names.

``load_records(format, root, split=...)`` dispatches to a parser registered with :func:`register_format`.
Every parser returns :class:`Records` ``(records, classes)``; ``classes[i]`` names label ``i`` (``None`` when
the layout has no classes). Paths are absolute. Malformed input raises :class:`ManifestError`, whose message
names the file and the line or field.

Formats (``root`` is a folder unless said otherwise):

- ``generic``: a CSV file (``root`` = the file, or a folder holding ``{split}.csv``) with a header and columns
  ``path`` (relative to the CSV's folder, or absolute), ``label`` (int, may be empty), optional ``start``,
  ``end`` (seconds), ``caption``; other columns go to ``extra``. Class names from ``classes.txt`` beside it.
- ``ucf101``: ``{Class}/{video}.avi`` + ``ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt``.
- ``hmdb51``: ``{class}/{video}.avi`` + ``{class}_test_split{N}.txt`` (codes 1 train, 2 test, 0 unused) in
  ``testTrainMulti_7030_splits/`` (or ``splits/`` or root).
- ``kinetics``: ``{split}.csv`` (label, youtube_id, time_start, time_end, split) and clips
  ``{split}/{youtube_id}_{start:06d}_{end:06d}.mp4``, flat or in per-label folders.
- ``ssv2``: ``labels.json`` + ``{train,validation,test}.json``; videos ``{id}.webm`` in
  ``20bn-something-something-v2/`` (or ``videos/`` or root).
- ``epic-kitchens``: ``EPIC_100_{train,validation}.csv``; videos ``{participant}/videos/{video_id}.MP4``.
- ``msrvtt``: a JSON with ``videos`` and ``sentences`` (``*videodatainfo*.json``); videos ``videos/{id}.mp4``.
- ``vatex``: ``vatex_{training,validation}_*.json`` (videoID, enCap, chCap); videos ``videos/{videoID}.mp4``.
- ``howto100m``: ``caption.json`` ``{video_id: {start: [], end: [], text: []}}``: one record per ASR segment.
- ``breakfast`` / ``50salads``: ``groundTruth/{video}.txt`` (one label per frame) + ``mapping.txt`` +
  ``splits/{train,test}.split{N}.bundle``; videos in ``videos/``.
- ``tvqa``: ``tvqa_{split}.jsonl`` (q, a0..a4, answer_idx, vid_name, ts); videos ``videos/{vid_name}.mp4``.
- ``mars``: ``bbox_{train,test}/{ID}/{ID}C{cam}T{tracklet}F{frame}.jpg`` frames grouped into tracklets, or
  tracklet videos ``{ID}C{cam}T{tracklet}.mp4``; identity and camera come from the names.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FORMATS",
    "ManifestError",
    "Records",
    "VideoRecord",
    "load_records",
    "read_classes",
    "register_format",
    "video_exists",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".MP4", ".m4v")


class ManifestError(ValueError):
    """Malformed annotation: the message names the file and the line or field."""

    def __init__(self, path: str | Path, where: str, reason: str) -> None:
        self.path, self.where = str(path), where
        super().__init__(f"{self.path}, {where}: {reason}" if where else f"{self.path}: {reason}")


@dataclass
class VideoRecord:
    """One sample: a video file (or, for frame folders, ``extra["frames"]``) and its annotation.

    ``start``/``end``: the part of the file to sample from, in seconds (None: the whole file).
    ``caption``: one text or several (a random one is used per sample).
    """

    path: Path
    label: int | None = None
    start: float | None = None
    end: float | None = None
    caption: str | list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Records(NamedTuple):
    records: list[VideoRecord]
    classes: list[str] | None


Parser = Callable[..., Records]
FORMATS: dict[str, Parser] = {}


def register_format(*names: str) -> Callable[[Parser], Parser]:
    """Register a parser ``fn(root: Path, split: str, **kwargs) -> Records`` under ``names``."""

    def decorator(fn: Parser) -> Parser:
        for name in names:
            if name in FORMATS:
                raise ValueError(f"dataset format {name!r} is registered twice")
            FORMATS[name] = fn
        return fn

    return decorator


def load_records(
    format: str, root: str | Path, split: str = "train", *, missing: str = "keep", **kwargs: Any
) -> Records:
    """Parse the annotation of ``format`` under ``root`` for ``split``.

    ``missing``: what to do with records whose file does not exist: ``"keep"`` (the dataset counts them as
    unreadable), ``"skip"`` (drop them, with one warning that counts them), ``"raise"``.
    """
    if format not in FORMATS:
        raise KeyError(f"unknown dataset format {format!r}; known: {sorted(FORMATS)}")
    if missing not in ("keep", "skip", "raise"):
        raise ValueError(f"missing must be 'keep', 'skip' or 'raise', got {missing!r}")
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise FileNotFoundError(f"dataset root {str(root)!r} does not exist")
    records, classes = FORMATS[format](root, split, **kwargs)
    if missing != "keep":
        absent = [r for r in records if not video_exists(r)]
        if absent and missing == "raise":
            raise FileNotFoundError(
                f"{len(absent)} of {len(records)} videos are missing, e.g. {absent[0].path}"
            )
        if absent:
            warnings.warn(
                f"{format} {split}: dropped {len(absent)} of {len(records)} records whose video is missing "
                f"(e.g. {absent[0].path})",
                stacklevel=2,
            )
            records = [r for r in records if video_exists(r)]
    return Records(records, classes)


def video_exists(record: VideoRecord) -> bool:
    """Whether the video file is there (for frame-list records: whether the list is non-empty)."""
    frames = record.extra.get("frames")
    return bool(frames) if frames is not None else record.path.is_file()


def _read_text(path: Path) -> str:
    """The UTF-8 text of an annotation file (a byte-order mark is dropped); binary content (bytes that are
    not UTF-8, NUL bytes) is a :class:`ManifestError` naming the file and the line of the first such byte."""
    data = path.read_bytes()
    try:
        text, bad = data.decode("utf-8-sig"), len(data)
    except UnicodeDecodeError as err:
        text, bad = None, err.start
    if b"\x00" in data[:bad]:
        bad = data.index(b"\x00")
    if bad < len(data):
        line = data[:bad].count(b"\n") + 1
        what = "a NUL byte" if data[bad] == 0 else f"byte 0x{data[bad]:02x} is not UTF-8"
        raise ManifestError(path, f"line {line}", f"not a text file ({what})")
    return text


def read_classes(path: Path) -> list[str]:
    """Class names, one per line (blank lines ignored); the line order is the label order."""
    names = [line.strip() for line in _read_text(path).splitlines()]
    names = [n for n in names if n]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError(path, "", f"duplicate class names {duplicates}")
    return names


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} not found")
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ManifestError(path, f"line {err.lineno}", f"invalid JSON ({err.msg})") from err


def _parse_int(value: str, path: Path, where: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ManifestError(path, where, f"field {name!r} must be an integer, got {value!r}") from None


def _parse_float(value: str, path: Path, where: str, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ManifestError(path, where, f"field {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ManifestError(path, where, f"field {name!r} must be finite, got {value!r}")
    return number


def _check_window(start: float | None, end: float | None, path: Path, where: str) -> None:
    if start is not None and start < 0:
        raise ManifestError(path, where, f"start must be >= 0, got {start}")
    if start is not None and end is not None and end <= start:
        raise ManifestError(path, where, f"end ({end}) must be after start ({start})")


def _find_video(folder: Path, stem: str, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Path:
    """``folder/stem.ext`` for the first extension that exists (the first extension when none does)."""
    for ext in extensions:
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return folder / f"{stem}{extensions[0]}"


def _first_dir(root: Path, names: Iterable[str], default: str | None = None) -> Path:
    """The first existing ``root/name``; else ``root/default`` (``root`` itself when no default)."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root / default if default else root


def _read_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows as ``(line number, row)``; checks the header and the number of fields of each row."""
    if not path.is_file():
        raise FileNotFoundError(f"manifest {str(path)!r} not found")
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        header = reader.fieldnames or []
        absent = [c for c in required if c not in header]
        if absent:
            raise ManifestError(path, "line 1 (header)", f"missing column(s) {absent}; header is {header}")
        rows = []
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise ManifestError(
                    path, f"line {line}", f"expected {len(header)} fields ({header}), got {row}"
                )
            rows.append((line, row))
    except csv.Error as err:  # NUL bytes, unterminated quotes
        raise ManifestError(path, f"line {reader.line_num}", f"not a valid CSV ({err})") from None
    return rows


# ------------------------------------------------------------------------------------------------------
# generic


def _classes_from_labels(
    records: list[VideoRecord], lines: list[int], path: Path, max_classes: int | None
) -> list[str] | None:
    """Class names ``"0" .. str(max label)`` when no classes file names them; None without labels.

    A label far above the number of distinct labels is a typo or a wrong column, not that many classes: the
    number of classes (max label + 1) may not exceed ``max_classes`` (default: 1000 + 10 x distinct labels).
    """
    labels = [(r.label, line) for r, line in zip(records, lines) if r.label is not None]
    if not labels:
        return None
    label, line = max(labels)
    distinct = len({label for label, _ in labels})
    limit = max_classes if max_classes is not None else 1000 + 10 * distinct
    if label + 1 > limit:
        raise ManifestError(
            path,
            f"line {line}",
            f"label {label} would make {label + 1} classes with {distinct} distinct labels (at most {limit}): "
            "give a classes file (classes.txt beside the manifest, one name per line) or raise max_classes",
        )
    return [str(i) for i in range(label + 1)]


@register_format("generic", "csv")
def parse_generic(
    root: Path, split: str = "train", classes_file: str | None = None, max_classes: int | None = None
) -> Records:
    """A CSV manifest (file, or ``root/{split}.csv``); see the module docstring for the columns.

    Args:
        root: the CSV file, or a folder holding ``{split}.csv``.
        split: which CSV of a folder to read.
        classes_file: class names, one per line (default: ``classes.txt`` beside the CSV); labels must index it.
        max_classes: without a classes file, the most classes the labels may imply (max label + 1); default
            1000 + 10 x the number of distinct labels.
    """
    path = root if root.is_file() else root / f"{split}.csv"
    rows = _read_csv(path, required=("path",))
    classes_path = Path(classes_file) if classes_file else path.parent / "classes.txt"
    classes = read_classes(classes_path) if classes_path.is_file() else None
    known = {"path", "label", "start", "end", "caption"}
    records, lines = [], []
    for line, row in rows:
        where = f"line {line}"
        if not row["path"]:
            raise ManifestError(path, where, "field 'path' is empty")
        video = Path(row["path"]).expanduser()
        video = video if video.is_absolute() else path.parent / video
        label = None
        if row.get("label"):
            text = row["label"]
            if classes is not None and text in classes and not text.lstrip("-").isdigit():
                label = classes.index(text)
            else:
                label = _parse_int(text, path, where, "label")
            if label < 0 or (classes is not None and label >= len(classes)):
                limit = f"[0, {len(classes)})" if classes is not None else ">= 0"
                raise ManifestError(path, where, f"label {label} out of range {limit}")
        start = _parse_float(row["start"], path, where, "start") if row.get("start") else None
        end = _parse_float(row["end"], path, where, "end") if row.get("end") else None
        _check_window(start, end, path, where)
        extra = {k: v for k, v in row.items() if k not in known}
        records.append(VideoRecord(video.resolve(), label, start, end, row.get("caption") or None, extra))
        lines.append(line)
    if classes is None:
        classes = _classes_from_labels(records, lines, path, max_classes)
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# UCF101 / HMDB51


@register_format("ucf101")
def parse_ucf101(
    root: Path,
    split: str = "train",
    fold: int = 1,
    splits_dir: str = "ucfTrainTestlist",
    video_dir: str | None = None,
) -> Records:
    """UCF101: ``classInd.txt`` ("1 ApplyEyeMakeup"), ``trainlist0{fold}.txt`` ("Class/v_x.avi 1"), ``testlist0{fold}.txt``."""
    lists = root / splits_dir
    videos = Path(video_dir) if video_dir else _first_dir(root, ("UCF-101", "videos"))
    class_file = lists / "classInd.txt"
    if not class_file.is_file():
        raise FileNotFoundError(f"UCF101 class index {str(class_file)!r} not found")
    indexed: dict[int, str] = {}
    for n, line in enumerate(_read_text(class_file).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ManifestError(class_file, f"line {n}", f"expected '<index> <class>', got {line!r}")
        indexed[_parse_int(parts[0], class_file, f"line {n}", "index")] = parts[1]
    if sorted(indexed) != list(range(1, len(indexed) + 1)):
        raise ManifestError(class_file, "", "class indices must be 1..N without gaps")
    classes = [indexed[i] for i in range(1, len(indexed) + 1)]
    if split not in ("train", "test"):
        raise ValueError(f"UCF101 splits are 'train' and 'test', got {split!r}")
    list_file = lists / f"{split}list{fold:02d}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"UCF101 split file {str(list_file)!r} not found")
    records = []
    for n, line in enumerate(_read_text(list_file).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        relpath = parts[0]
        class_name = relpath.split("/")[0]
        if class_name not in classes:
            raise ManifestError(list_file, f"line {n}", f"class folder {class_name!r} is not in classInd.txt")
        label = classes.index(class_name)
        if len(parts) > 1:
            listed = _parse_int(parts[1], list_file, f"line {n}", "label") - 1
            if listed != label:
                raise ManifestError(
                    list_file, f"line {n}", f"label {listed + 1} does not match folder {class_name!r}"
                )
        records.append(VideoRecord((videos / relpath).resolve(), label))
    return Records(records, classes)


_HMDB_SPLIT_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d)\.txt$")


@register_format("hmdb51")
def parse_hmdb51(
    root: Path,
    split: str = "train",
    fold: int = 1,
    splits_dir: str | None = None,
    video_dir: str | None = None,
) -> Records:
    """HMDB51: per-class ``{class}_test_split{fold}.txt`` with lines "<video>.avi <code>" (1 train, 2 test, 0 unused)."""
    code = {"train": "1", "test": "2", "unused": "0"}.get(split)
    if code is None:
        raise ValueError(f"HMDB51 splits are 'train', 'test' and 'unused', got {split!r}")
    lists = root / splits_dir if splits_dir else _first_dir(root, ("testTrainMulti_7030_splits", "splits"))
    videos = Path(video_dir) if video_dir else _first_dir(root, ("hmdb51", "videos"))
    files = sorted(p for p in lists.glob(f"*_test_split{fold}.txt") if _HMDB_SPLIT_RE.match(p.name))
    if not files:
        raise FileNotFoundError(f"no HMDB51 split files '*_test_split{fold}.txt' in {str(lists)!r}")
    classes = [_HMDB_SPLIT_RE.match(p.name)["cls"] for p in files]
    records = []
    for label, (class_name, list_file) in enumerate(zip(classes, files)):
        for n, line in enumerate(_read_text(list_file).splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ManifestError(list_file, f"line {n}", f"expected '<video> <0|1|2>', got {line!r}")
            if parts[1] == code:
                records.append(VideoRecord((videos / class_name / parts[0]).resolve(), label))
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# Kinetics


@register_format("kinetics")
def parse_kinetics(root: Path, split: str = "train", video_dir: str | None = None) -> Records:
    """Kinetics CSV (``label,youtube_id,time_start,time_end,split``); clips named ``{id}_{start:06d}_{end:06d}.mp4``.

    Class names: ``classes.txt`` if present, else the sorted labels of ``train.csv`` (else of this split), so
    label indices agree across splits. A clip is looked for in ``{video_dir or root/split}/`` then in its
    label's folder there.
    """
    name = {"val": "validate", "validation": "validate"}.get(split, split)
    csv_path = root / f"{name}.csv"
    if not csv_path.is_file() and name == "validate":
        csv_path = root / "val.csv"
    rows = _read_csv(csv_path, required=("youtube_id", "time_start", "time_end"))
    if (root / "classes.txt").is_file():
        classes = read_classes(root / "classes.txt")
    else:
        source = root / "train.csv" if (root / "train.csv").is_file() else csv_path
        label_rows = rows if source == csv_path else _read_csv(source, required=("label",))
        classes = sorted({row["label"] for _, row in label_rows if row.get("label")}) or None
    videos = Path(video_dir) if video_dir else _first_dir(root, (split, name, "videos"), split)
    records = []
    for line, row in rows:
        where = f"line {line}"
        start = _parse_int(row["time_start"], csv_path, where, "time_start")
        end = _parse_int(row["time_end"], csv_path, where, "time_end")
        stem = f"{row['youtube_id']}_{start:06d}_{end:06d}"
        label_name = row.get("label") or None
        label = None
        if label_name is not None:
            if classes is None or label_name not in classes:
                raise ManifestError(csv_path, where, f"label {label_name!r} is not a known class")
            label = classes.index(label_name)
        path = _find_video(videos, stem)
        if not path.is_file() and label_name is not None:
            in_folder = _find_video(videos / label_name, stem)
            path = in_folder if in_folder.is_file() else path
        extra = {"youtube_id": row["youtube_id"], "time_start": start, "time_end": end}
        records.append(VideoRecord(path.resolve(), label, extra=extra))
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# Something-Something v2


@register_format("ssv2")
def parse_ssv2(root: Path, split: str = "train", video_dir: str | None = None) -> Records:
    """SSv2: ``labels.json`` (template -> index) and ``{train,validation,test}.json`` (id, label, template, placeholders)."""
    name = {"val": "validation"}.get(split, split)
    labels_path, split_path = root / "labels.json", root / f"{name}.json"
    mapping = _read_json(labels_path)
    if not isinstance(mapping, dict):
        raise ManifestError(labels_path, "", "expected an object {template: index}")
    index = {}
    for template, value in mapping.items():
        index[template] = _parse_int(value, labels_path, f"key {template!r}", "index")
    classes = [None] * len(index)
    for template, i in index.items():
        if not 0 <= i < len(index) or classes[i] is not None:
            raise ManifestError(
                labels_path, f"key {template!r}", f"indices must be 0..{len(index) - 1}, each once"
            )
        classes[i] = template
    items = _read_json(split_path)
    if not isinstance(items, list):
        raise ManifestError(split_path, "", "expected a list of {id, label, template, placeholders}")
    videos = Path(video_dir) if video_dir else _first_dir(root, ("20bn-something-something-v2", "videos"))
    records = []
    for i, item in enumerate(items):
        where = f"item {i}"
        if not isinstance(item, dict) or "id" not in item:
            raise ManifestError(split_path, where, "missing field 'id'")
        label = None
        if "template" in item:
            template = item["template"].replace("[", "").replace("]", "")
            if template not in index:
                raise ManifestError(split_path, where, f"template {template!r} is not in labels.json")
            label = index[template]
        extra = {
            "id": str(item["id"]),
            "template": item.get("template"),
            "placeholders": item.get("placeholders", []),
        }
        path = _find_video(videos, str(item["id"]), (".webm", ".mp4"))
        records.append(VideoRecord(path.resolve(), label, caption=item.get("label"), extra=extra))
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# EPIC-Kitchens-100


def _timestamp(value: str, path: Path, where: str, name: str) -> float:
    """``HH:MM:SS.fff`` -> seconds."""
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", value.strip())
    if not match:
        raise ManifestError(path, where, f"field {name!r} must be HH:MM:SS.ff, got {value!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@register_format("epic-kitchens", "epic_kitchens")
def parse_epic_kitchens(
    root: Path, split: str = "train", label: str = "verb", video_dir: str | None = None
) -> Records:
    """EPIC-Kitchens-100 action segments; ``label`` is ``"verb"`` or ``"noun"`` (both kept in ``extra``).

    Class names from ``EPIC_100_{verb,noun}_classes.csv`` (``id,key,...``) when present.
    """
    if label not in ("verb", "noun"):
        raise ValueError(f"label must be 'verb' or 'noun', got {label!r}")
    name = {"val": "validation"}.get(split, split)
    csv_path = root / f"EPIC_100_{name}.csv"
    rows = _read_csv(
        csv_path,
        required=(
            "narration_id",
            "participant_id",
            "video_id",
            "start_timestamp",
            "stop_timestamp",
            "verb_class",
            "noun_class",
        ),
    )
    videos = Path(video_dir) if video_dir else root
    records = []
    for line, row in rows:
        where = f"line {line}"
        start = _timestamp(row["start_timestamp"], csv_path, where, "start_timestamp")
        end = _timestamp(row["stop_timestamp"], csv_path, where, "stop_timestamp")
        _check_window(start, end, csv_path, where)
        verb = _parse_int(row["verb_class"], csv_path, where, "verb_class")
        noun = _parse_int(row["noun_class"], csv_path, where, "noun_class")
        extra = {
            "narration_id": row["narration_id"],
            "participant_id": row["participant_id"],
            "video_id": row["video_id"],
            "verb_class": verb,
            "noun_class": noun,
            "verb": row.get("verb"),
            "noun": row.get("noun"),
        }
        path = _find_video(videos / row["participant_id"] / "videos", row["video_id"], (".MP4", ".mp4"))
        value = verb if label == "verb" else noun
        records.append(VideoRecord(path.resolve(), value, start, end, row.get("narration") or None, extra))
    classes_path = root / f"EPIC_100_{label}_classes.csv"
    classes = None
    if classes_path.is_file():
        class_rows = _read_csv(classes_path, required=("id", "key"))
        classes = [""] * len(class_rows)
        for line, row in class_rows:
            i = _parse_int(row["id"], classes_path, f"line {line}", "id")
            if not 0 <= i < len(classes):
                raise ManifestError(classes_path, f"line {line}", f"id {i} out of range")
            classes[i] = row["key"]
    elif records:
        classes = [f"{label}_{i}" for i in range(max(r.label for r in records) + 1)]
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# Captions: MSR-VTT, VATEX, HowTo100M


@register_format("msrvtt")
def parse_msrvtt(
    root: Path, split: str = "train", annotation: str | None = None, video_dir: str | None = None
) -> Records:
    """MSR-VTT: ``{"videos": [{video_id, split, category}], "sentences": [{video_id, caption}]}``.

    One record per video of ``split`` (``train``, ``validate``/``val``, ``test``, or ``all``) with all of its
    captions; ``label`` is the category (20 classes, unnamed).
    """
    if annotation:
        path = Path(annotation)
    else:
        found = sorted(root.glob("*videodatainfo*.json")) or sorted(root.glob("*.json"))
        if not found:
            raise FileNotFoundError(f"no MSR-VTT annotation JSON in {str(root)!r}")
        path = found[0]
    data = _read_json(path)
    if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
        raise ManifestError(path, "", "expected an object with 'videos' and 'sentences'")
    wanted = {"val": "validate"}.get(split, split)
    captions: dict[str, list[str]] = {}
    for i, sentence in enumerate(data["sentences"]):
        if not isinstance(sentence, dict) or "video_id" not in sentence or "caption" not in sentence:
            raise ManifestError(path, f"sentences[{i}]", "needs 'video_id' and 'caption'")
        captions.setdefault(str(sentence["video_id"]), []).append(str(sentence["caption"]))
    videos = (
        Path(video_dir)
        if video_dir
        else _first_dir(root, ("videos/all", "videos", "TrainValVideo"), "videos")
    )
    records = []
    for i, video in enumerate(data["videos"]):
        if not isinstance(video, dict) or "video_id" not in video:
            raise ManifestError(path, f"videos[{i}]", "missing field 'video_id'")
        if wanted != "all" and video.get("split") != wanted:
            continue
        video_id = str(video["video_id"])
        if video_id not in captions:
            raise ManifestError(path, f"videos[{i}]", f"video {video_id!r} has no sentence")
        category = video.get("category")
        label = None if category is None else _parse_int(category, path, f"videos[{i}]", "category")
        extra = {"video_id": video_id, "split": video.get("split")}
        records.append(
            VideoRecord(
                _find_video(videos, video_id).resolve(), label, caption=captions[video_id], extra=extra
            )
        )
    labels = [r.label for r in records if r.label is not None]
    classes = [str(i) for i in range(max(labels) + 1)] if labels else None
    return Records(records, classes)


@register_format("vatex")
def parse_vatex(
    root: Path, split: str = "train", language: str = "en", video_dir: str | None = None
) -> Records:
    """VATEX: ``[{"videoID", "enCap": [...], "chCap": [...]}]``; ``language`` ``"en"`` or ``"zh"`` picks ``caption``.

    Files: ``vatex_training_*.json``, ``vatex_validation_*.json``, ``vatex_public_test_*.json`` (``split`` =
    train / val / test). Both languages are kept in ``extra["captions"]``.
    """
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    pattern = {
        "train": "training",
        "val": "validation",
        "validation": "validation",
        "test": "public_test",
    }.get(split)
    if pattern is None:
        raise ValueError(f"VATEX splits are train, val and test; got {split!r}")
    found = sorted(root.glob(f"vatex_{pattern}*.json"))
    if not found:
        raise FileNotFoundError(f"no 'vatex_{pattern}*.json' in {str(root)!r}")
    path = found[-1]
    items = _read_json(path)
    if not isinstance(items, list):
        raise ManifestError(path, "", "expected a list of {videoID, enCap, chCap}")
    videos = Path(video_dir) if video_dir else _first_dir(root, ("videos",), "videos")
    records = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "videoID" not in item:
            raise ManifestError(path, f"item {i}", "missing field 'videoID'")
        key = "enCap" if language == "en" else "chCap"
        if key not in item:
            raise ManifestError(path, f"item {i}", f"missing field {key!r}")
        if not isinstance(item[key], list) or not all(isinstance(c, str) for c in item[key]):
            raise ManifestError(path, f"item {i}", f"field {key!r} must be a list of strings")
        extra = {
            "video_id": item["videoID"],
            "captions": {"en": item.get("enCap", []), "zh": item.get("chCap", [])},
        }
        records.append(
            VideoRecord(
                _find_video(videos, item["videoID"]).resolve(), None, caption=list(item[key]), extra=extra
            )
        )
    return Records(records, None)


@register_format("howto100m")
def parse_howto100m(
    root: Path, split: str = "train", captions: str = "caption.json", video_dir: str | None = None
) -> Records:
    """HowTo100M-style ASR: ``{video_id: {"start": [...], "end": [...], "text": [...]}}``.

    One record per ASR segment (``start``/``end`` seconds, ``caption`` = the text). There are no official
    splits: ``root/{split}.txt`` (one video id per line), when present, selects the videos.
    """
    path = root / captions
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ManifestError(path, "", "expected an object {video_id: {start, end, text}}")
    selected = None
    if (root / f"{split}.txt").is_file():
        selected = {line.strip() for line in _read_text(root / f"{split}.txt").splitlines() if line.strip()}
    videos = Path(video_dir) if video_dir else _first_dir(root, ("videos",), "videos")
    records = []
    for video_id, entry in data.items():
        if selected is not None and video_id not in selected:
            continue
        if not isinstance(entry, dict) or not all(k in entry for k in ("start", "end", "text")):
            raise ManifestError(path, f"video {video_id!r}", "needs lists 'start', 'end' and 'text'")
        if not len(entry["start"]) == len(entry["end"]) == len(entry["text"]):
            raise ManifestError(path, f"video {video_id!r}", "'start', 'end' and 'text' differ in length")
        video = _find_video(videos, video_id).resolve()
        for k, (start, end, text) in enumerate(zip(entry["start"], entry["end"], entry["text"])):
            where = f"video {video_id!r} segment {k}"
            start = _parse_float(start, path, where, "start")
            end = _parse_float(end, path, where, "end")
            _check_window(start, end, path, where)
            records.append(
                VideoRecord(video, None, start, end, str(text), {"video_id": video_id, "segment": k})
            )
    return Records(records, None)


# ------------------------------------------------------------------------------------------------------
# Action segmentation: Breakfast, 50Salads


@register_format("breakfast", "50salads", "action-segmentation")
def parse_action_segmentation(
    root: Path, split: str = "train", fold: int = 1, video_dir: str | None = None
) -> Records:
    """MS-TCN layout: ``groundTruth/{video}.txt`` (one action name per frame), ``mapping.txt`` ("index name"),
    ``splits/{split}.split{fold}.bundle`` (file names; all of ``groundTruth`` when there are no splits).

    ``extra["frame_labels"]``: int64 ``(num_frames,)`` class per frame; ``extra["segments"]``:
    ``[(start_frame, end_frame_exclusive, class)]``. ``label`` is None (frame-level task).
    """
    mapping = root / "mapping.txt"
    if not mapping.is_file():
        raise FileNotFoundError(f"action mapping {str(mapping)!r} not found")
    indexed = {}
    for n, line in enumerate(_read_text(mapping).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ManifestError(mapping, f"line {n}", f"expected '<index> <name>', got {line!r}")
        indexed[parts[1]] = _parse_int(parts[0], mapping, f"line {n}", "index")
    classes = [None] * len(indexed)
    for name, i in indexed.items():
        if not 0 <= i < len(classes) or classes[i] is not None:
            raise ManifestError(mapping, "", f"indices must be 0..{len(classes) - 1}, each once")
        classes[i] = name
    truth = root / "groundTruth"
    bundle = root / "splits" / f"{split}.split{fold}.bundle"
    if bundle.is_file():
        names = [line.strip() for line in _read_text(bundle).splitlines() if line.strip()]
    elif (root / "splits").is_dir():
        raise FileNotFoundError(f"split file {str(bundle)!r} not found")
    else:
        names = sorted(p.name for p in truth.glob("*.txt"))
    videos = Path(video_dir) if video_dir else _first_dir(root, ("videos",), "videos")
    records = []
    for name in names:
        label_file = truth / name
        if not label_file.is_file():
            raise ManifestError(bundle, "", f"listed file {name!r} has no ground truth in {str(truth)!r}")
        lines = [line.strip() for line in _read_text(label_file).splitlines() if line.strip()]
        frame_labels = np.empty(len(lines), dtype=np.int64)
        for n, action in enumerate(lines):
            if action not in indexed:
                raise ManifestError(label_file, f"line {n + 1}", f"action {action!r} is not in mapping.txt")
            frame_labels[n] = indexed[action]
        if not len(lines):
            raise ManifestError(label_file, "", "no frame labels")
        change = np.flatnonzero(np.diff(frame_labels)) + 1
        bounds = np.concatenate([[0], change, [len(frame_labels)]])
        segments = [(int(a), int(b), int(frame_labels[a])) for a, b in itertools.pairwise(bounds)]
        stem = Path(name).stem
        extra = {"video_id": stem, "frame_labels": frame_labels, "segments": segments}
        records.append(VideoRecord(_find_video(videos, stem).resolve(), None, extra=extra))
    return Records(records, classes)


# ------------------------------------------------------------------------------------------------------
# TVQA


@register_format("tvqa")
def parse_tvqa(root: Path, split: str = "train", video_dir: str | None = None) -> Records:
    """TVQA ``tvqa_{split}.jsonl``: question ``q`` is the caption, ``answer_idx`` the label (None on test).

    ``extra``: ``question``, ``answers`` (a0..a4), ``qid``, ``show_name``. ``ts`` ("60.3-65.6") sets start/end.
    """
    name = {"test": "test_public"}.get(split, split)
    path = root / f"tvqa_{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"TVQA file {str(path)!r} not found")
    videos = Path(video_dir) if video_dir else _first_dir(root, ("videos",), "videos")
    records = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(path, where, f"invalid JSON ({err.msg})") from err
        missing = [k for k in ("q", "vid_name", *(f"a{i}" for i in range(5))) if k not in item]
        if missing:
            raise ManifestError(path, where, f"missing field(s) {missing}")
        answers = [str(item[f"a{i}"]) for i in range(5)]
        label = None
        if "answer_idx" in item:
            label = _parse_int(item["answer_idx"], path, where, "answer_idx")
            if not 0 <= label < 5:
                raise ManifestError(path, where, f"answer_idx must be 0..4, got {label}")
        start = end = None
        ts = str(item.get("ts", ""))
        if ts and "nan" not in ts.lower():
            bounds = ts.split("-")
            if len(bounds) != 2:
                raise ManifestError(path, where, f"field 'ts' must be 'start-end', got {ts!r}")
            start = _parse_float(bounds[0], path, where, "ts")
            end = _parse_float(bounds[1], path, where, "ts")
            _check_window(start, end, path, where)
        extra = {
            "question": item["q"],
            "answers": answers,
            "qid": item.get("qid"),
            "show_name": item.get("show_name"),
        }
        video = _find_video(videos, item["vid_name"]).resolve()
        records.append(VideoRecord(video, label, start, end, item["q"], extra))
    return Records(records, [f"a{i}" for i in range(5)])


# ------------------------------------------------------------------------------------------------------
# MARS (video person re-identification)

_MARS_RE = re.compile(r"^(?P<pid>\d\d-1|-?\d{1,4})C(?P<cam>\d)T(?P<tracklet>\d{4})(?:F(?P<frame>\d{3,}))?$")


@register_format("mars")
def parse_mars(root: Path, split: str = "train", fps: float = 25.0) -> Records:
    """MARS: ``bbox_train`` for ``split="train"``, ``bbox_test`` for ``"test"``, ``"query"`` and ``"gallery"``.

    Files are named ``{pid:04d}C{camera}T{tracklet:04d}F{frame:03d}.jpg`` (frames, grouped into tracklets in
    ``extra["frames"]``, played at ``fps``) or ``{pid:04d}C{camera}T{tracklet:04d}.mp4`` (one video per
    tracklet). Junk (``-1``/``00-1``) is dropped; distractors (pid 0) stay in the gallery only. Instead of
    MARS's ``.mat`` query list, ``root/query.txt`` (tracklet names) or, without it, the first tracklet of each
    identity (lowest camera) is the query and the rest the gallery. ``label`` indexes the split's sorted
    identities; ``extra`` has ``pid``, ``camera``, ``tracklet``.
    """
    folder = {"train": "bbox_train", "test": "bbox_test", "query": "bbox_test", "gallery": "bbox_test"}.get(
        split
    )
    if folder is None:
        raise ValueError(f"MARS splits are train, test, query and gallery; got {split!r}")
    base = root / folder
    if not base.is_dir():
        raise FileNotFoundError(f"MARS folder {str(base)!r} not found")
    tracklets: dict[str, dict[str, Any]] = {}
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        match = _MARS_RE.match(file.stem)
        if not match:
            if file.suffix.lower() in (".jpg", ".png", *VIDEO_EXTENSIONS):
                raise ManifestError(file, "file name", "expected '{pid}C{camera}T{tracklet}[F{frame}]'")
            continue
        if "-" in match["pid"]:  # junk (-1 / 00-1)
            continue
        pid = int(match["pid"])
        key = f"{pid:04d}C{match['cam']}T{match['tracklet']}"
        entry = tracklets.setdefault(
            key, {"pid": pid, "camera": int(match["cam"]), "tracklet": int(match["tracklet"]), "files": []}
        )
        entry["files"].append(file)
        entry["is_video"] = match["frame"] is None
    if split in ("query", "gallery"):
        if (root / "query.txt").is_file():
            query = {line.strip() for line in _read_text(root / "query.txt").splitlines() if line.strip()}
        else:
            first: dict[int, str] = {}
            for key in sorted(tracklets, key=lambda k: (tracklets[k]["camera"], tracklets[k]["tracklet"])):
                if tracklets[key]["pid"] > 0:
                    first.setdefault(tracklets[key]["pid"], key)
            query = set(first.values())
        tracklets = {k: v for k, v in tracklets.items() if (k in query) == (split == "query")}
    if split == "train":
        tracklets = {k: v for k, v in tracklets.items() if v["pid"] > 0}
    pids = sorted({v["pid"] for v in tracklets.values()})
    records = []
    for key in sorted(tracklets):
        entry = tracklets[key]
        extra = {
            "pid": entry["pid"],
            "camera": entry["camera"],
            "tracklet": entry["tracklet"],
            "tracklet_id": key,
        }
        if entry["is_video"]:
            path = entry["files"][0]
        else:
            path = entry["files"][0].parent / key
            extra.update(frames=[p.resolve() for p in entry["files"]], fps=fps)
        records.append(VideoRecord(path.resolve(), pids.index(entry["pid"]), extra=extra))
    return Records(records, [f"{pid:04d}" for pid in pids])
