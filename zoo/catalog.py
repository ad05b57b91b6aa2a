"""The checkpoint catalog: ``checkpoints.yaml`` parsed into typed, validated records.

Each entry names an architecture from the registry, where its weights come from (in order of
preference), how inputs must be prepared, and what it scores (paper vs measured here). An entry
whose file holds several encoders (a video and an audio tower, say) lists them under ``towers``,
each with its architecture, its preprocessing and the key prefix of its weights in the file. A bad
field raises :class:`CatalogError` naming the entry and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from zoo.errors import UsageError

CATALOG_PATH = Path(__file__).with_name("checkpoints.yaml")
MODALITIES = ("video", "image", "keyframe", "motion_vectors", "audio", "text")  # batch keys (zoo.data.batch)
_CLIP_MODALITIES = ("video", "image", "keyframe", "motion_vectors")  # towers whose preprocess is Preprocess
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogError(ValueError):
    """A malformed catalog entry; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class HubSource:
    """A file in a Hugging Face Hub repository (our safetensors mirror)."""

    repo_id: str
    filename: str = "model.safetensors"
    revision: str = "main"
    sha256: str | None = None

    @property
    def format(self) -> str:
        """Hub mirrors hold zoo's own keys as safetensors: nothing to convert."""
        return "safetensors"


@dataclass(frozen=True)
class UrlSource:
    """A plain HTTP(S) download; ``format`` is ``safetensors`` or a converter name."""

    url: str
    format: str = "safetensors"
    sha256: str | None = None


@dataclass(frozen=True)
class FileSource:
    """A file shipped with the package (path relative to ``zoo/``) or an absolute path."""

    path: str
    format: str = "safetensors"
    sha256: str | None = None


WeightSource = Union[HubSource, UrlSource, FileSource]  # noqa: UP007 (runtime isinstance use)


@dataclass(frozen=True)
class Preprocess:
    """How a clip must be decoded and normalised for this checkpoint."""

    modality: str = "video"  # video | image | keyframe | motion_vectors | audio | text
    num_frames: int | None = None
    sampling_stride: int | None = None
    size: int | None = None  # crop side, pixels
    short_side: int | None = None  # resize before the centre crop; default size * 256/224
    mean: tuple[float, ...] = (0.45, 0.45, 0.45)
    std: tuple[float, ...] = (0.225, 0.225, 0.225)
    channel_order: str = "rgb"  # rgb | bgr
    test_clips: int = 1
    test_crops: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class AudioPreprocess:
    """How a sound track becomes the spectrogram ``(1, F, S)`` an audio tower reads.

    In YAML the fields of ``front_end`` sit beside ``preset`` and ``seconds``, e.g.
    ``{preset: gdt}`` or ``{kind: log_mel, sample_rate: 16000, n_filters: 40, seconds: 2.0}``.

    Args:
        preset: a method's audio pipeline (``zoo.data.audio_transforms.audio_preset``: gdt, stica, selavi).
        seconds: the length of the window read from the track (None: the preset's, else 1 s).
        front_end: ``zoo.data.audio_transforms.AudioFrontEnd`` fields, over the preset's; they are
            checked when the front-end is built (``zoo.transform_for`` and ``zoo checkpoints validate``).
    """

    preset: str | None = None
    seconds: float | None = None
    front_end: dict[str, Any] = field(default_factory=dict)

    modality = "audio"

    def to_dict(self) -> dict[str, Any]:
        out = {"preset": self.preset, "seconds": self.seconds, **self.front_end}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class TextPreprocess:
    """How captions become the token ids a text tower reads.

    Args:
        tokenizer: a ``zoo.data.text.build_tokenizer`` spec: ``bytes``, a ``tokenizer.json``, a
            ``transformers`` folder or a Hub id.
        max_length: most ids per text, special tokens included (None: the tokenizer's default).
        revision: the Hub revision of the tokenizer.
    """

    tokenizer: str
    max_length: int | None = None
    revision: str | None = None

    modality = "text"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


TowerPreprocess = Union[Preprocess, AudioPreprocess, TextPreprocess]  # noqa: UP007 (runtime isinstance use)


@dataclass(frozen=True)
class Tower:
    """One encoder of a multi-tower checkpoint: its architecture, its inputs and its keys in the file.

    Args:
        entry: the name of the catalog entry.
        modality: one of :data:`MODALITIES` (``video``, ``audio``, ``text``, ...), the batch key it reads.
        arch: a registered architecture.
        arch_args: keyword arguments of its factory.
        prefix: the prefix of this tower's keys in the weights file (``video_network.base.``); it is
            removed before loading, so the remaining keys are the architecture's own.
        preprocess: how its inputs are prepared.
        classifier_keys: key prefixes (after ``prefix``) of a classifier the file may lack or hold
            for another number of classes (None: the architecture's own ``classifier_keys``).
    """

    entry: str
    modality: str
    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    preprocess: TowerPreprocess = Preprocess()
    classifier_keys: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """``"<entry> (<modality> tower)"``, for messages."""
        return f"{self.entry} ({self.modality} tower)"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": self.arch, "arch_args": self.arch_args, "prefix": self.prefix}
        out["preprocess"] = self.preprocess.to_dict()
        if self.classifier_keys is not None:
            out["classifier_keys"] = list(self.classifier_keys)
        return out


@dataclass(frozen=True)
class Metric:
    """One figure: its value, the dataset/split it is on, and (for ours) the command that made it."""

    name: str
    value: float
    dataset: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Metrics:
    paper: tuple[Metric, ...] = ()
    measured: tuple[Metric, ...] = ()

    def headline(self) -> Metric | None:
        """The first measured figure, else the first paper figure."""
        return (self.measured or self.paper or (None,))[0]


@dataclass(frozen=True)
class Paper:
    title: str
    url: str | None = None
    bibtex: str | None = None


@dataclass(frozen=True)
class CatalogEntry:
    """One named checkpoint: a single architecture (``arch``), or several ``towers`` sharing one file.

    Args:
        name: the catalog name.
        arch: the registered architecture (None for an entry with ``towers``).
        arch_args: keyword arguments of its factory.
        weights: where the bytes come from, in order of preference.
        verified: every source has a sha256 checked here.
        preprocess: how inputs are prepared (single-architecture entries).
        metrics: figures from the paper and measured here.
        license: the weights' licence.
        paper: title, link and citation.
        notes: free text.
        towers: modality -> :class:`Tower`, in the file's order (empty for a single architecture).
        ignore_keys: glob patterns of keys in the file that no tower loads (projection heads, say);
            any other key no tower claims is an error.
    """

    name: str
    arch: str | None = None
    arch_args: dict[str, Any] = field(default_factory=dict)
    weights: tuple[WeightSource, ...] = ()
    verified: bool = False
    preprocess: Preprocess = Preprocess()
    metrics: Metrics = Metrics()
    license: str = "unknown"
    paper: Paper | None = None
    notes: str = ""
    towers: dict[str, Tower] = field(default_factory=dict)
    ignore_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["weights"] = [_source_to_dict(s) for s in self.weights]
        del out["name"], out["towers"], out["ignore_keys"]
        if self.towers:
            del out["arch"], out["arch_args"], out["preprocess"]
            out["towers"] = {modality: tower.to_dict() for modality, tower in self.towers.items()}
            out["ignore_keys"] = list(self.ignore_keys)
        else:
            out["preprocess"] = self.preprocess.to_dict()
        return out

    @property
    def architectures(self) -> list[tuple[str, dict[str, Any]]]:
        """``(arch, arch_args)`` of every tower, or of the single architecture."""
        if self.towers:
            return [(t.arch, t.arch_args) for t in self.towers.values()]
        return [(self.arch, self.arch_args)]

    @property
    def arch_label(self) -> str:
        """The architecture in words: ``r3d_18``, or ``video: r2plus1d_18 + audio: resnet9_audio``."""
        if self.towers:
            return " + ".join(f"{m}: {t.arch}" for m, t in self.towers.items())
        return str(self.arch)

    def tower(self, modality: str) -> Tower:
        """The tower of ``modality``; an entry without ``towers`` is one tower of its preprocess modality.

        Args:
            modality: one of :data:`MODALITIES`.
        """
        if modality in self.towers:
            return self.towers[modality]
        if not self.towers and self.arch and modality == self.preprocess.modality:
            return Tower(self.name, modality, self.arch, self.arch_args, "", self.preprocess)
        towers = self.towers or {self.preprocess.modality: None}
        raise UsageError(f"checkpoint '{self.name}' has no {modality!r} tower; it has: {', '.join(towers)}")

    @property
    def weight_status(self) -> str:
        """Where the weights come from, in words.

        ``shipped`` (a file in the package), ``Hub`` or ``original URL``, each followed by
        ``, unverified`` while a source of that kind has no sha256; ``none`` when the catalog lists no
        source (nothing can be downloaded).
        """
        for kind, label in ((FileSource, "shipped"), (HubSource, "Hub"), (UrlSource, "original URL")):
            sources = [s for s in self.weights if isinstance(s, kind)]
            if sources:
                return label if all(s.sha256 for s in sources) else f"{label}, unverified"
        return "none"


def _source_to_dict(source: WeightSource) -> dict[str, Any]:
    kind = {HubSource: "hub", UrlSource: "url", FileSource: "file"}[type(source)]
    return {kind: dataclasses.asdict(source)}


# --- parsing ---------------------------------------------------------------------------------

_ENTRY_FIELDS = {f.name for f in dataclasses.fields(CatalogEntry)} - {"name"}


class _Ctx:
    """Where we are, for error messages."""

    def __init__(self, path: Path, entry: str):
        self.path, self.entry = path, entry

    def error(self, field_name: str, message: str) -> CatalogError:
        return CatalogError(f"{self.path.name}: entry '{self.entry}', field '{field_name}': {message}")


def _did_you_mean(unknown: list[str], allowed: Iterable[str]) -> str:
    """'archh' (did you mean 'arch'?); ... for each unknown key."""
    allowed = sorted(allowed)
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return "; ".join(parts)


def _build(cls: type, data: Any, ctx: _Ctx, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ctx.error(where, f"expected a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ctx.error(
            where, f"unknown key {_did_you_mean(unknown, names)}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(names[key].type, value, ctx, f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ctx.error(where, str(exc).split(".__init__() ")[-1]) from None


def _coerce(annotation: str, value: Any, ctx: _Ctx, where: str) -> Any:
    """Check ``value`` against a (string) annotation from the dataclasses above."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ctx.error(where, "must not be null")
    base = annotation.replace(" | None", "")
    if base.startswith("tuple[float"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
            raise ctx.error(where, f"expected a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    checks = {"str": str, "int": int, "float": (int, float), "bool": bool}
    if base in checks:
        if (isinstance(value, bool) and base != "bool") or not isinstance(value, checks[base]):
            raise ctx.error(where, f"expected {base}, got {type(value).__name__} {value!r}")
        return float(value) if base == "float" else value
    if base.startswith("dict"):
        if not isinstance(value, dict):
            raise ctx.error(where, f"expected a mapping, got {type(value).__name__}")
        return dict(value)
    return value


def _parse_source(raw: Any, ctx: _Ctx, where: str) -> WeightSource:
    kinds = {"hub": HubSource, "url": UrlSource, "file": FileSource}
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in kinds:
        raise ctx.error(
            where, f"each source is one of {{hub: ...}}, {{url: ...}}, {{file: ...}}; got {raw!r}"
        )
    kind, body = next(iter(raw.items()))
    source = _build(kinds[kind], body, ctx, f"{where}.{kind}")
    if source.sha256 is not None and not _SHA256.match(source.sha256):
        raise ctx.error(f"{where}.{kind}.sha256", f"not a lowercase hex sha256: {source.sha256!r}")
    if kind == "url" and not source.url.startswith(("https://", "http://")):
        raise ctx.error(f"{where}.url.url", f"not an http(s) URL: {source.url!r}")
    if (
        kind == "file"
        and not Path(source.path).expanduser().is_absolute()
        and ".." in Path(source.path).parts
    ):
        raise ctx.error(
            f"{where}.file.path", f"{source.path!r} leaves the zoo package folder; give a path inside it"
        )
    return source


def _check_preprocess(prep: Preprocess, ctx: _Ctx, where: str = "preprocess") -> None:
    if prep.channel_order not in ("rgb", "bgr"):
        raise ctx.error(f"{where}.channel_order", f"must be 'rgb' or 'bgr', got {prep.channel_order!r}")
    for name in ("num_frames", "sampling_stride", "size", "short_side", "test_clips"):
        value = getattr(prep, name)
        if value is not None and value < 1:
            raise ctx.error(f"{where}.{name}", f"must be >= 1, got {value}")
    if prep.test_crops not in (1, 3):
        raise ctx.error(
            f"{where}.test_crops", f"must be 1 (centre) or 3 (three crops), got {prep.test_crops}"
        )
    counts = (1, 2) if prep.modality == "motion_vectors" else (1, 3)  # (dx, dy) or RGB channels
    if len(prep.mean) != len(prep.std) or len(prep.mean) not in counts:
        raise ctx.error(
            f"{where}.mean",
            f"mean and std need {counts[0]} or {counts[1]} values each, got {prep.mean} and {prep.std}",
        )
    if any(v <= 0 for v in prep.std):
        raise ctx.error(f"{where}.std", f"must be > 0, got {prep.std}")


def _string_list(value: Any, ctx: _Ctx, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ctx.error(where, f"expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _parse_tower_preprocess(modality: str, raw: Any, ctx: _Ctx, where: str) -> TowerPreprocess:
    """The preprocessing of one tower, by modality: clip geometry, an audio front-end or a tokenizer."""
    if not isinstance(raw, dict):
        raise ctx.error(where, f"expected a mapping, got {type(raw).__name__}")
    if modality in _CLIP_MODALITIES:
        if raw.get("modality", modality) != modality:
            raise ctx.error(f"{where}.modality", f"is {raw['modality']!r} in the {modality} tower")
        prep = _build(Preprocess, {**raw, "modality": modality}, ctx, where)
        _check_preprocess(prep, ctx, where)
        return prep
    if modality == "audio":
        named = {k: raw[k] for k in ("preset", "seconds") if k in raw}
        audio = _build(AudioPreprocess, named, ctx, where)
        if audio.seconds is not None and audio.seconds <= 0:
            raise ctx.error(f"{where}.seconds", f"must be > 0, got {audio.seconds}")
        return dataclasses.replace(audio, front_end={k: v for k, v in raw.items() if k not in named})
    text = _build(TextPreprocess, raw, ctx, where)
    if not text.tokenizer:
        raise ctx.error(f"{where}.tokenizer", "must not be empty")
    if text.max_length is not None and text.max_length < 2:
        raise ctx.error(f"{where}.max_length", f"must be >= 2, got {text.max_length}")
    return text


_TOWER_FIELDS = ("arch", "arch_args", "prefix", "preprocess", "classifier_keys")


def _parse_tower(modality: str, raw: Any, ctx: _Ctx) -> Tower:
    """One tower; its ``arch`` is checked against the registry by ``zoo checkpoints validate`` and at load
    time (reading the catalog must not import the models: ``zoo card`` stays fast)."""
    where = f"towers.{modality}"
    if modality not in MODALITIES:
        raise ctx.error(
            where, f"unknown modality {_did_you_mean([modality], MODALITIES)}; one of {MODALITIES}"
        )
    if not isinstance(raw, dict):
        raise ctx.error(where, f"expected a mapping of {', '.join(_TOWER_FIELDS)}")
    unknown = sorted(set(raw) - set(_TOWER_FIELDS))
    if unknown:
        raise ctx.error(f"{where}.{unknown[0]}", f"unknown field {_did_you_mean(unknown, _TOWER_FIELDS)}")
    if "arch" not in raw:
        raise ctx.error(f"{where}.arch", "is required")
    arch = _coerce("str", raw["arch"], ctx, f"{where}.arch")
    keys = raw.get("classifier_keys")
    return Tower(
        entry=ctx.entry,
        modality=modality,
        arch=arch,
        arch_args=_coerce("dict", raw.get("arch_args") or {}, ctx, f"{where}.arch_args"),
        prefix=_coerce("str", raw.get("prefix", ""), ctx, f"{where}.prefix"),
        preprocess=_parse_tower_preprocess(modality, raw.get("preprocess") or {}, ctx, f"{where}.preprocess"),
        classifier_keys=None if keys is None else _string_list(keys, ctx, f"{where}.classifier_keys"),
    )


def _parse_towers(raw: Any, ctx: _Ctx) -> dict[str, Tower]:
    """modality -> Tower; no tower's key prefix may start another's (a key would belong to both)."""
    if not isinstance(raw, dict) or not raw:
        raise ctx.error("towers", "expected a mapping modality -> {arch, prefix, preprocess, ...}")
    towers = {modality: _parse_tower(modality, body, ctx) for modality, body in raw.items()}
    for a, b in itertools.permutations(towers.values(), 2):
        if a.prefix.startswith(b.prefix):
            raise ctx.error(
                f"towers.{a.modality}.prefix",
                f"{a.prefix!r} starts with towers.{b.modality}.prefix {b.prefix!r}, so a key could belong "
                "to both; give each tower its own prefix",
            )
    return towers


def parse_entry(name: str, raw: Any, path: Path = CATALOG_PATH) -> CatalogEntry:
    """Validate one YAML entry into a :class:`CatalogEntry`."""
    ctx = _Ctx(path, name)
    if not isinstance(raw, dict):
        raise ctx.error("", "an entry is a mapping of fields")
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    if unknown:
        raise ctx.error(unknown[0], f"unknown field {_did_you_mean(unknown, _ENTRY_FIELDS)}")
    data = dict(raw)
    towers = _parse_towers(data.pop("towers"), ctx) if "towers" in data else {}
    ignore_keys = _string_list(data.pop("ignore_keys"), ctx, "ignore_keys") if "ignore_keys" in data else ()
    if towers:
        for single in ("arch", "arch_args", "preprocess"):
            if single in data:
                raise ctx.error(
                    single, f"an entry with towers gives it per tower (towers.<modality>.{single})"
                )
    elif "arch" not in data:
        raise ctx.error("arch", "is required (or towers, for a file holding several encoders)")
    elif ignore_keys:
        raise ctx.error("ignore_keys", "is for an entry with towers; a single architecture loads every key")
    weights = data.pop("weights", []) or []
    if not isinstance(weights, list):
        raise ctx.error("weights", "expected a list of sources")
    metrics = data.pop("metrics", {}) or {}
    if not isinstance(metrics, dict) or set(metrics) - {"paper", "measured"}:
        raise ctx.error("metrics", "expected a mapping with keys 'paper' and/or 'measured'")
    paper = data.pop("paper", None)
    preprocess = data.pop("preprocess", {}) or {}
    entry = _build(CatalogEntry, {"name": name, **data}, ctx, "")
    parsed_metrics = Metrics(
        **{
            side: tuple(
                _build(Metric, m, ctx, f"metrics.{side}[{i}]") for i, m in enumerate(metrics.get(side) or [])
            )
            for side in ("paper", "measured")
        }
    )
    for i, m in enumerate(parsed_metrics.measured):
        if not m.command:
            raise ctx.error(
                f"metrics.measured[{i}].command", "a measured figure must give the command that made it"
            )
    sources = tuple(_parse_source(s, ctx, f"weights[{i}]") for i, s in enumerate(weights))
    if entry.verified and any(s.sha256 is None for s in sources):
        raise ctx.error("verified", "is true but a weight source has no sha256")
    prep = _build(Preprocess, preprocess, ctx, "preprocess")
    _check_preprocess(prep, ctx)
    return dataclasses.replace(
        entry,
        weights=sources,
        metrics=parsed_metrics,
        preprocess=prep,
        paper=_build(Paper, paper, ctx, "paper") if paper is not None else None,
        towers=towers,
        ignore_keys=ignore_keys,
    )


MAX_EXPANDED_VALUES = 100_000
"""A catalog may share values through YAML aliases, but not expand past this many values."""


class _StrictLoader(yaml.SafeLoader):
    """YAML without surprises: a key given twice in a mapping is an error, and so is a document whose
    aliases (``*name``) expand it past :data:`MAX_EXPANDED_VALUES` values (an "alias bomb").
    """

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_EXPANDED_VALUES:
            raise CatalogError(
                f"{self.name}: its aliases (*name) expand it to {size} values, more than the "
                f"{MAX_EXPANDED_VALUES} a catalog may hold; spell the values out or remove the aliases"
            )
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise CatalogError(
                    f"{self.name}: '{key}' is given twice, on lines {seen[key]} and {line}; keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is copied out (shared nodes counted once each use)."""
    if id(node) not in memo:
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        memo[id(node)] = 0  # a recursive structure counts as itself while it is being measured
        memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[id(node)]


def _load_yaml(path: Path) -> Any:
    text = path.read_text()
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_catalog(path: Path | str) -> dict[str, CatalogEntry]:
    """Parse a whole catalog file; the first bad entry raises :class:`CatalogError`."""
    path = Path(path)
    try:
        raw = _load_yaml(path)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the catalog is a mapping of entry name -> fields")
    return {name: parse_entry(name, body, path) for name, body in raw.items()}


@functools.cache
def catalog() -> dict[str, CatalogEntry]:
    """The packaged catalog (parsed once)."""
    return parse_catalog(CATALOG_PATH)


def get_entry(name: str) -> CatalogEntry:
    entries = catalog()
    if name not in entries:
        from zoo.registry import suggest

        raise suggest(name, list(entries), "checkpoint")
    return entries[name]
