"""Tar shards of the zoo's samples (WebDataset layout): writing them, and streaming samples out of them.

Writing (:func:`write_shards`, ``zoo data shard``): a :class:`ShardKind` (one per DataModule) turns every record
into members of a tar file: its files, ``<key>.<name>`` (their own bytes: a video is not re-encoded), then
``<key>.json`` (its annotation). A video record (:data:`VIDEO_RECORDS`) gives its video file (or its frame
images) and its label, start, end, caption and ``extra`` fields (captions by language, identity, camera, QA
items, multi-hot labels ...); a document gives its text only; a feature sequence its features and frame labels.
A shard is closed before it would pass ``max_size`` bytes. Shards are written under a temporary name and renamed
when complete; the index ``<prefix>.index.json`` is written last, the same way, and lists the kind, the classes
and every shard with its sample count, keys, size and sha256.

Reading (:class:`ShardStream`): an ``IterableDataset`` over shards given by a brace pattern
(``"https://host/train-{000000..000099}.tar"``, local paths alike) or by their index file. The index sits
beside the shards (``train-{...}.tar`` -> ``train.index.json``) and gives the epoch its length. Shards are split
without overlap over ranks (shard ``i`` to rank ``i % world``) and then over the rank's DataLoader workers;
a seeded shuffle buffer mixes the samples of a worker; the bytes are decoded in the worker by the DataModule's
own map-style dataset (``load_exactly`` of the record the kind rebuilt from the members, e.g. an
:class:`~zoo.data.video.InMemoryVideo` for a video file), so a sample from a shard equals the sample from the
file. A sample that cannot be decoded (a corrupt member, an annotation that is not JSON), or that a truncated
shard lost, is skipped and counted like an unreadable file.

Training epochs have a fixed length, ``(samples // world) // batch_size`` batches per rank (every rank the
same, as DDP needs): a worker reads its shards in a seeded order, again in a new order when it needs more, and
stops at its quota. Batch ``j`` of a rank comes from its worker ``j % readers``, so the position in the stream
is known from the number of batches consumed: :meth:`ShardStream.resume_at` makes the next epoch start there
(exact mid-epoch resume), skipping the consumed samples without decoding them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from zoo.data.formats import Records, VideoRecord
from zoo.data.video import InMemoryVideo
from zoo.errors import UsageError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "VIDEO_RECORDS",
    "RawSample",
    "SampleDecodeError",
    "ShardError",
    "ShardIndex",
    "ShardItem",
    "ShardKind",
    "ShardStream",
    "expand_braces",
    "parse_size",
    "read_index",
    "write_shards",
]

INDEX_VERSION = 1
DEFAULT_TIMEOUT_S = 30.0
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


class ShardError(UsageError):
    """A shard or its index cannot be used: unreachable, not a tar, or members that do not match the index."""


class SampleDecodeError(ValueError):
    """One sample's members cannot be read back (skipped and counted like an unreadable file)."""


# ---- what a sample holds, per DataModule


@dataclass
class ShardItem:
    """One record as stored: its files (``{name: bytes or path}``, written as ``<key>.<name>``) and annotation."""

    members: dict[str, bytes | Path]
    meta: dict[str, Any]


@dataclass(frozen=True)
class ShardKind:
    """How a DataModule's records become shard samples and back; the index records the kind by ``name``.

    Args:
        name: the kind (``zoo data shard --kind``), checked against the index when reading.
        item: a record -> its :class:`ShardItem` (which files, which annotation).
        record: ``(members, meta, name)`` of a stored sample -> the record its DataModule's dataset loads
            (raises :class:`SampleDecodeError` when the members cannot be read back).
    """

    name: str
    item: Callable[[Any], ShardItem]
    record: Callable[[dict[str, bytes], dict[str, Any], str], Any]


def _jsonable(value: Any) -> Any:
    """Annotation values as JSON: arrays as lists, paths as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _video_item(record: VideoRecord) -> ShardItem:
    """A video record's file (``mp4``, named by its suffix) or its frame images (``frame000000.jpg`` ...), and its
    annotation."""
    frames = record.extra.get("frames")
    if frames is not None:
        members = {f"frame{i:06d}{Path(f).suffix.lower()}": Path(f) for i, f in enumerate(frames)}
    else:
        members = {(Path(record.path).suffix.lower() or ".mp4").lstrip("."): Path(record.path)}
    extra = {k: v for k, v in record.extra.items() if k != "frames"}
    meta = {"name": Path(record.path).name, "label": record.label, "start": record.start, "end": record.end}
    return ShardItem(members, {**meta, "caption": record.caption, "extra": _jsonable(extra)})


def _video_record(members: dict[str, bytes], meta: dict[str, Any], name: str) -> VideoRecord:
    """The :class:`VideoRecord` of a stored sample, its video (or frames) in memory."""
    extra = dict(meta.get("extra") or {})
    frames = sorted(k for k in members if k.startswith("frame"))
    if frames:
        extra["frames"] = [InMemoryVideo(members[k], f"{name}.{k}") for k in frames]
        path = InMemoryVideo(b"", name)
    else:
        if len(members) != 1:
            raise SampleDecodeError(f"{name}: expected one video member, got {sorted(members)}")
        (video,) = members.values()
        path = InMemoryVideo(video, name)
    return VideoRecord(
        path=path,  # type: ignore[arg-type]
        label=meta.get("label"),
        start=meta.get("start"),
        end=meta.get("end"),
        caption=meta.get("caption"),
        extra=extra,
    )


VIDEO_RECORDS = ShardKind("video", _video_item, _video_record)
"""Video records (:class:`~zoo.data.formats.VideoRecord`): the file's own bytes, or its frame images, and the
annotation; the DataModules of clips, image–text pairs, QA items and tracklets share it under their own names."""


# ---- writing


def parse_size(text: str | int) -> int:
    """``"1GB"``, ``"500MB"``, ``"64KiB"`` or a number of bytes -> bytes."""
    if isinstance(text, int):
        size = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", str(text), flags=re.IGNORECASE)
        if match is None:
            raise UsageError(f"--max-size: cannot read {text!r} as a size (e.g. 1GB, 500MB, 1048576)")
        number, unit, binary = match.groups()
        base = 1024 if binary else 1000
        size = int(float(number) * (base ** ("KMGT".index(unit.upper()) + 1) if unit else 1))
    if size < 1:
        raise UsageError(f"--max-size must be positive, got {text!r}")
    return size


def _padded(size: int) -> int:
    """The size of a tar file of ``size`` bytes of blocks: tar pads the file to whole records."""
    return -(-size // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # no time: the same records give the same bytes
    tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shards(
    records: Records | tuple[Sequence[Any], list[str] | None],
    out: str | os.PathLike,
    prefix: str = "train",
    max_size: int = 10**9,
    progress: bool = True,
    kind: ShardKind = VIDEO_RECORDS,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``records`` as tar shards ``out/<prefix>-000000.tar ...`` and their index; returns the index path.

    Args:
        records: the records and class names (:func:`~zoo.data.formats.load_records`, or a DataModule's
            :meth:`~zoo.data.base.ZooDataModule.shard_source`).
        out: the output folder (created).
        prefix: the shards' name before their number (the split).
        max_size: a shard is closed before it would pass this many bytes (one sample per shard at least).
        progress: show a progress bar.
        kind: what a record's sample holds (:class:`ShardKind`).
        info: what the reader needs to know of the whole set (e.g. the feature dimension), kept in the index.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items, classes = records
    if not items:
        raise UsageError(f"no records to shard for {prefix!r}")
    stored = [kind.item(record) for record in items]
    for number, item in enumerate(stored):
        missing = [str(f) for f in item.members.values() if isinstance(f, Path) and not f.is_file()]
        if missing:
            raise UsageError(f"record {number}: file {missing[0]!r} does not exist")
    writer = _ShardWriter(out, prefix)
    bar = _Bar(len(items), f"sharding {prefix}") if progress else None
    try:
        for number, item in enumerate(stored):
            members = {
                name: data.read_bytes() if isinstance(data, Path) else data
                for name, data in item.members.items()
            }
            try:
                members["json"] = json.dumps({"index": number, **item.meta}, ensure_ascii=False).encode()
            except TypeError as err:
                raise UsageError(f"record {number}: an annotation field is not JSON ({err})") from err
            size = 512 * sum(
                2 + (len(data) + 511) // 512 for data in members.values()
            )  # headers + data, a margin
            if writer.keys and _padded(writer.size + size) > max_size:
                writer.close()
            writer.add(f"{number:09d}", members, size)
            if bar is not None:
                bar.advance()
        writer.close()
    finally:
        writer.abort()
        if bar is not None:
            bar.stop()
    shards = writer.shards
    index = {
        "version": INDEX_VERSION,
        "kind": kind.name,
        "prefix": prefix,
        "samples": len(items),
        "classes": classes,
        "info": _jsonable(info or {}),
        "pattern": f"{prefix}-{{000000..{len(shards) - 1:06d}}}.tar",
        "shards": shards,
    }
    index_path = out / f"{prefix}.index.json"
    tmp = out / f".{index_path.name}.partial"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, index_path)
    return index_path


class _ShardWriter:
    """Shards of one split, each written under a temporary name and renamed once complete."""

    def __init__(self, out: Path, prefix: str) -> None:
        self.out, self.prefix = out, prefix
        self.shards: list[dict[str, Any]] = []
        self.tar: tarfile.TarFile | None = None
        self.keys: list[str] = []
        self.size = 0

    @property
    def name(self) -> str:
        return f"{self.prefix}-{len(self.shards):06d}.tar"

    @property
    def partial(self) -> Path:
        return self.out / f".{self.name}.partial"

    def add(self, key: str, members: dict[str, bytes], size: int) -> None:
        """Add a sample's members, ``json`` last (the reader's sign that the sample is complete)."""
        if self.tar is None:
            self.tar = tarfile.open(self.partial, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self.keys, self.size = [], 1024  # the end-of-archive blocks
        for name, data in members.items():
            _add_member(self.tar, f"{key}.{name}", data)
        self.keys.append(key)
        self.size += size

    def close(self) -> None:
        """Finish the open shard and record it."""
        if self.tar is None:
            return
        self.tar.close()
        self.tar = None
        final = self.out / self.name
        os.replace(self.partial, final)
        self.shards.append(
            {
                "name": final.name,
                "samples": len(self.keys),
                "keys": self.keys,
                "bytes": final.stat().st_size,
                "sha256": _sha256(final),
            }
        )
        self.keys = []

    def abort(self) -> None:
        """Drop a shard left open by an error."""
        if self.tar is not None:
            self.tar.close()
            self.tar = None
            self.partial.unlink(missing_ok=True)


class _Bar:
    def __init__(self, total: int, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.task = self.progress.add_task(label, total=total)
        self.progress.start()

    def advance(self) -> None:
        self.progress.advance(self.task)

    def stop(self) -> None:
        self.progress.stop()


# ---- locations


def expand_braces(pattern: str) -> list[str]:
    """``"a-{000..002}.tar"`` -> ``["a-000.tar", "a-001.tar", "a-002.tar"]`` (numeric ranges, zero-padded)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.groups()
    if int(last) < int(first):
        raise UsageError(f"shards: the range {{{first}..{last}}} in {pattern!r} is empty")
    width = len(first)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [
        name
        for number in range(int(first), int(last) + 1)
        for name in expand_braces(f"{head}{number:0{width}d}{tail}")
    ]


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _sibling(location: str, name: str) -> str:
    """The location of file ``name`` in the same folder (URL or path) as ``location``."""
    if _is_url(location):
        return location.rsplit("/", 1)[0] + "/" + name
    return str(Path(location).parent / name)


def open_location(location: str, timeout: float = DEFAULT_TIMEOUT_S) -> BinaryIO:
    """A binary stream of a local file or an http(s) URL; a :class:`ShardError` naming it when it cannot be read."""
    if _is_url(location):
        try:
            return urllib.request.urlopen(location, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise ShardError(f"cannot read {location}: {reason}") from err
    path = Path(location).expanduser()
    try:
        return path.open("rb")
    except OSError as err:
        raise ShardError(f"cannot read {location}: {err.strerror or err}") from err


@dataclass(frozen=True)
class ShardIndex:
    """The shards of one split and their samples, from an index file.

    Args:
        locations: where every shard is (paths or URLs), in index order.
        counts: samples of every shard.
        keys: the sample keys of every shard, in member order.
        sha256: every shard's checksum.
        classes: class names (None: the records had none).
        source: where the index was read from.
        kind: what a sample holds (:attr:`ShardKind.name`; indexes without one hold videos).
        info: what the reader needs to know of the whole set (e.g. the feature dimension).
    """

    locations: tuple[str, ...]
    counts: tuple[int, ...]
    keys: tuple[tuple[str, ...], ...]
    sha256: tuple[str, ...]
    classes: list[str] | None
    source: str
    kind: str = VIDEO_RECORDS.name
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(self.counts)

    def offsets(self) -> np.ndarray:
        """The global index of every shard's first sample ``(num_shards,)``."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)


def _index_location(pattern: str) -> str:
    """``.../train-{000000..000009}.tar`` -> ``.../train.index.json`` (an index file is itself)."""
    if pattern.endswith(".index.json"):
        return pattern
    name = pattern.rsplit("/", 1)[-1]
    prefix = re.split(r"[{]", name, maxsplit=1)[0].rstrip("-_.")
    if not prefix:
        raise UsageError(f"shards: cannot find the index of {pattern!r}; give the .index.json file itself")
    return _sibling(pattern, f"{prefix}.index.json")


def read_index(pattern: str, timeout: float = DEFAULT_TIMEOUT_S) -> ShardIndex:
    """The index of the shards ``pattern`` (a brace pattern or the ``.index.json`` itself) names.

    With a brace pattern, its shards must be those of the index (a subset, e.g. one range of them, is fine).
    """
    location = _index_location(pattern)
    with open_location(location, timeout) as stream:
        try:
            index = json.loads(stream.read())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
            raise ShardError(f"{location}: not a shard index ({err})") from err
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or "shards" not in index:
        raise ShardError(f"{location}: not a shard index of version {INDEX_VERSION}")
    by_name = {shard["name"]: shard for shard in index["shards"]}
    if pattern.endswith(".index.json"):
        names = [shard["name"] for shard in index["shards"]]
    else:
        names = [location.rsplit("/", 1)[-1] for location in expand_braces(pattern)]
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ShardError(f"{pattern}: shard {unknown[0]} is not in its index {location}")
    chosen = [by_name[name] for name in names]
    return ShardIndex(
        locations=tuple(_sibling(location, name) for name in names),
        counts=tuple(int(shard["samples"]) for shard in chosen),
        keys=tuple(tuple(shard["keys"]) for shard in chosen),
        sha256=tuple(shard["sha256"] for shard in chosen),
        classes=index.get("classes"),
        source=location,
        kind=index.get("kind", VIDEO_RECORDS.name),
        info=dict(index.get("info") or {}),
    )


# ---- reading


@dataclass
class RawSample:
    """One sample as stored: its global index, name, member bytes and annotation bytes."""

    index: int
    name: str  # "<shard location>#<key>" for messages
    members: dict[str, bytes] | None  # None: the shard ended before it (truncated)
    meta: bytes = b""  # the JSON member
    problem: str | None = None  # why there are no members


class _HashingReader(io.RawIOBase):
    """A stream that hashes what is read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        return len(data)


def read_shard(index: ShardIndex, shard: int, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[RawSample]:
    """The samples of shard ``shard`` in member order, checked against the index.

    A shard cut short yields its lost samples with ``members=None`` (counted as unreadable by the reader); members
    that are not the index's keys, or a checksum that differs, are a :class:`ShardError` naming the shard.
    """
    location, keys = index.locations[shard], index.keys[shard]
    first = int(index.offsets()[shard])
    stream = open_location(location, timeout)
    hashing = _HashingReader(stream)
    position, pending = 0, {}
    try:
        try:
            with tarfile.open(fileobj=io.BufferedReader(hashing, 1 << 16), mode="r|") as tar:
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if position >= len(keys) or key != keys[position]:
                        expected = keys[position] if position < len(keys) else "no more samples"
                        raise ShardError(
                            f"{location}: member {member.name} does not match the index {index.source} "
                            f"(expected {expected})"
                        )
                    file = tar.extractfile(member)
                    data = b"" if file is None else file.read()
                    if ext != "json":
                        pending[ext] = data
                        continue
                    yield RawSample(
                        first + position, f"{location}#{key}", pending, data
                    )  # json ends a sample
                    position, pending = position + 1, {}
        except (tarfile.TarError, EOFError, OSError, ValueError) as err:
            if isinstance(err, ShardError):
                raise
            reason = f"truncated or unreadable after {position} of {len(keys)} samples ({err})"
            for lost in range(position, len(keys)):
                yield RawSample(first + lost, f"{location}#{keys[lost]}", None, problem=reason)
            return
        if position != len(keys):
            raise ShardError(f"{location}: {position} samples, the index {index.source} says {len(keys)}")
        hashing.read()  # the tar's end padding
        if hashing.digest.hexdigest() != index.sha256[shard]:
            raise ShardError(f"{location}: sha256 differs from the index {index.source}")
    finally:
        stream.close()


class ShardStream(IterableDataset):
    """Samples streamed from shards, decoded in the workers by a map-style dataset over the same indices.

    Args:
        index: the shards (:func:`read_index`).
        decoder: a map-style dataset of ``index.samples`` placeholder records with ``load_exactly(i, record)``
            (None for a sample it skipped), ``is_known_bad(i)``, ``count_failure(i, reason)``, ``error_stats()``
            and shared ``set_epoch`` / ``epoch`` (:class:`~zoo.data.datasets.VideoDataset`).
        batch_size: samples per batch of the loader (an epoch is a whole number of batches per worker).
        shuffle: training order: shards in a seeded order per epoch, a shuffle buffer, a fixed epoch length;
            False: every sample of this rank's shards once, in order.
        shuffle_buffer: samples held by a worker's shuffle buffer.
        seed: seed of the shard order and the buffer.
        timeout: seconds a shard read may wait on the network.
        kind: how the decoder's records are rebuilt from the members (:class:`ShardKind`).
    """

    def __init__(
        self,
        index: ShardIndex,
        decoder: Any,
        batch_size: int,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        timeout: float = DEFAULT_TIMEOUT_S,
        kind: ShardKind = VIDEO_RECORDS,
    ) -> None:
        self.index, self.decoder, self.batch_size, self.kind = index, decoder, int(batch_size), kind
        self.shuffle, self.shuffle_buffer, self.seed, self.timeout = (
            shuffle,
            int(shuffle_buffer),
            seed,
            timeout,
        )
        self.world, self.rank, self.num_workers = 1, 0, 1
        self._resume: tuple[int, int] | None = None  # (epoch, batches already consumed by this rank)

    def distribute(self, world: int, rank: int, num_workers: int) -> None:
        """Split over ``world`` ranks (this one is ``rank``) and ``num_workers`` DataLoader workers (0: one)."""
        if len(self.index.counts) < world:
            raise UsageError(
                f"{len(self.index.counts)} shards cannot feed {world} ranks: write smaller shards "
                f"(zoo data shard --max-size) of {self.index.source}"
            )
        self.world, self.rank, self.num_workers = world, rank, max(1, num_workers)

    # ---- epochs

    def set_epoch(self, epoch: int) -> None:
        self.decoder.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.decoder.epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        """Make epoch ``epoch`` start after its first ``batches`` batches of this rank."""
        self._resume = (int(epoch), int(batches))

    def _shards(self) -> list[int]:
        return list(range(self.rank, len(self.index.counts), self.world))

    @property
    def readers(self) -> int:
        """Workers that read shards (the others have none)."""
        return min(self.num_workers, len(self._shards()))

    def batches(self) -> int:
        """Batches of this rank per epoch."""
        if self.shuffle:
            return (self.index.samples // self.world) // self.batch_size
        samples = sum(self.index.counts[s] for s in self._shards())
        return -(-samples // self.batch_size)

    def __len__(self) -> int:
        if self.shuffle:
            return self.batches() * self.batch_size
        return sum(self.index.counts[s] for s in self._shards())

    # ---- iteration

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if worker >= self.readers:
            return
        if not self.shuffle:
            for shard in self._shards()[worker :: self.readers]:
                for raw in read_shard(self.index, shard, self.timeout):
                    sample = self._decode(raw)
                    if sample is not None:
                        yield sample
            return
        epoch, consumed = self.epoch, 0
        if self._resume is not None and self._resume[0] == epoch:
            consumed = self._resume[1]
        logical = (worker + consumed) % self.readers  # batch j of the rank is logical worker j % readers's
        total = self.batches()
        quota = total // self.readers + (logical < total % self.readers)
        skip = consumed // self.readers + (logical < consumed % self.readers)
        raw_stream = self._endless(epoch, logical)
        to_skip, produced = skip * self.batch_size, skip * self.batch_size
        for raw in raw_stream:
            if produced >= quota * self.batch_size:
                return
            if to_skip:  # consumed before the checkpoint: not decoded again
                if not self._known_bad(raw):
                    to_skip -= 1
                continue
            sample = self._decode(raw)
            if sample is not None:
                produced += 1
                yield sample

    def _endless(self, epoch: int, logical: int) -> Iterator[RawSample]:
        """The logical worker's shards in a seeded order through the shuffle buffer, again in a new order when it
        needs more (the buffer empties between rounds: a worker whose quota is its samples sees each once)."""
        own = self._shards()[logical :: self.readers]
        for round_ in range(1 << 30):
            rng = np.random.default_rng([self.seed, epoch, self.rank, logical, round_])
            raws = (
                raw
                for shard in rng.permutation(own)
                for raw in read_shard(self.index, int(shard), self.timeout)
            )
            good = 0
            for raw in self._shuffled(raws, rng):
                good += raw.members is not None
                yield raw
            if not good:
                names = ", ".join(self.index.locations[s] for s in own)
                raise ShardError(f"no readable sample in {names}")

    def _shuffled(self, raws: Iterator[RawSample], rng: np.random.Generator) -> Iterator[RawSample]:
        """``raws`` through a shuffle buffer of ``shuffle_buffer`` samples."""
        buffer: list[RawSample] = []
        for raw in raws:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(raw)
                continue
            pick = int(rng.integers(len(buffer)))
            buffer[pick], raw = raw, buffer[pick]
            yield raw
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def error_stats(self) -> dict[str, Any]:
        """Unreadable-sample counts over all workers (the decoder's)."""
        return self.decoder.error_stats()

    def _known_bad(self, raw: RawSample) -> bool:
        return raw.members is None or self.decoder.is_known_bad(raw.index)

    def _decode(self, raw: RawSample) -> dict[str, Any] | None:
        if raw.members is None:
            self.decoder.count_failure(raw.index, raw.problem)
            return None
        if self.decoder.is_known_bad(raw.index):
            return None
        try:
            meta = json.loads(raw.meta)
            if not isinstance(meta, dict):
                raise SampleDecodeError(f"{raw.name}.json: not a JSON object")
            record = self.kind.record(raw.members, meta, raw.name)
        except (SampleDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
            self.decoder.count_failure(raw.index, f"unreadable sample ({err})")
            return None
        return self.decoder.load_exactly(raw.index, record)


def shard_records(index: ShardIndex) -> list[VideoRecord]:
    """Placeholder records of the index's samples, named ``<shard>#<key>`` (for counts and warnings)."""
    return [
        VideoRecord(path=InMemoryVideo(b"", f"{location}#{key}"))  # type: ignore[arg-type]
        for location, keys in zip(index.locations, index.keys)
        for key in keys
    ]
