"""Weight resolution: our Hub mirror, the authors' original URLs and local files; one cache; sha256.

A catalog entry lists its weight sources in order of preference; :func:`resolve` returns the first
that can be had as a local safetensors file (a pickled original is converted once and the result
cached). Every file is checked against its sha256; where the catalog has none, the hash is recorded
on first download and later files must match it.

Cache layout (``cache_dir=`` puts both parts under one folder: ``<cache_dir>/hub`` and ``<cache_dir>/zoo``)::

    <hub cache>/models--org--name/...          Hub files, huggingface_hub's layout (HF_HOME / HF_HUB_CACHE)
    <zoo cache>/downloads/<host>/<url path>    originals fetched over HTTP(S)    ($ZOO_CACHE or ~/.cache/zoo)
    <zoo cache>/converted/<entry>-<sha12>.safetensors   originals converted to zoo's keys
    <zoo cache>/recorded_sha256.json           hashes recorded where the catalog gives none

Offline (``HF_HUB_OFFLINE=1`` or ``ZOO_OFFLINE=1``) nothing touches the network; a missing file is one
:class:`WeightsUnavailableError` that says what was tried and how to provide the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from filelock import FileLock
from tqdm.auto import tqdm

from zoo import __version__
from zoo.catalog import CatalogEntry, FileSource, HubSource, UrlSource, WeightSource
from zoo.serialization import load_raw, load_state_dict, read_metadata, save_state_dict

__all__ = [
    "ChecksumError",
    "DownloadError",
    "IncompleteDownloadError",
    "UnverifiedWeightsWarning",
    "WeightsUnavailableError",
    "describe_source",
    "download",
    "download_url",
    "hub_cache_dir",
    "is_offline",
    "load_folder",
    "resolve",
    "sha256_of",
    "zoo_cache_dir",
]

PACKAGE_DIR = Path(__file__).resolve().parent
RECORDED_SHA256 = "recorded_sha256.json"
_TRUE = {"1", "true", "yes", "on"}
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file's sha256 differs from the catalog's (or from the one recorded on first download)."""

    def __init__(
        self,
        path: str | os.PathLike,
        expected: str,
        actual: str,
        *,
        source: str | None = None,
        deleted: bool = True,
        recorded_in: str | os.PathLike | None = None,
    ):
        self.path, self.expected, self.actual, self.deleted = str(path), expected, actual, deleted
        origin = f" (from {source})" if source else ""
        if recorded_in is not None:
            basis = f"the sha256 recorded on its first download in {recorded_in}"
            advice = f"if the file changed on purpose, remove its line from {recorded_in} and try again"
        else:
            basis = "the catalog's sha256"
            advice = "the download was corrupted or the file changed upstream; try again or report it"
        fate = "The file was deleted" if deleted else "The file was left in place"
        super().__init__(
            f"sha256 mismatch for {path}{origin}: expected {expected} ({basis}), got {actual}. "
            f"{fate}; {advice}."
        )


class DownloadError(OSError):
    """An HTTP(S) download failed (no network, HTTP error)."""


class IncompleteDownloadError(DownloadError):
    """The connection ended before the whole file arrived; the partial file is kept for resuming."""

    def __init__(self, url: str, partial: Path, received: int, expected: int | None, reason: str = ""):
        self.url, self.partial, self.received, self.expected = url, partial, received, expected
        total = f" of {expected}" if expected is not None else ""
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"download of {url} stopped after {received}{total} bytes{why}; the partial file is kept at "
            f"{partial} and the next attempt resumes it"
        )


class WeightsUnavailableError(RuntimeError):
    """None of an entry's weight sources could give a file (offline with an empty cache, network errors)."""

    def __init__(self, name: str, message: str, tried: list[tuple[str, str]]):
        self.name, self.tried = name, tried
        super().__init__(message)


class UnverifiedWeightsWarning(UserWarning):
    """A file was accepted without a catalog sha256; its hash was recorded for later checks."""


class _Unavailable(Exception):
    """This source cannot give the file now (not cached while offline, network or HTTP failure)."""


# --- cache folders, offline mode -----------------------------------------------------------------


def zoo_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """zoo's own cache: ``<cache_dir>/zoo``, else ``$ZOO_CACHE``, else ``~/.cache/zoo``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "zoo"
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo").expanduser()


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where Hub files go: ``<cache_dir>/hub``, else huggingface_hub's cache (HF_HUB_CACHE, HF_HOME/hub)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "hub"
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _offline_reason() -> str | None:
    for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    from huggingface_hub import constants

    return "HF_HUB_OFFLINE was set when huggingface_hub was imported" if constants.HF_HUB_OFFLINE else None


def is_offline() -> bool:
    """Whether network access is off (``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE``, read at each call)."""
    return _offline_reason() is not None


# --- hashing -------------------------------------------------------------------------------------


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An inter-process lock for work on ``path`` (several ranks may resolve the same weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        yield


def _recorded(zoo_dir: Path) -> dict[str, dict[str, str]]:
    path = zoo_dir / RECORDED_SHA256
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(zoo_dir: Path, key: str, sha256: str, entry: str) -> Path:
    path = zoo_dir / RECORDED_SHA256
    with _locked(path):
        table = _recorded(zoo_dir)
        table[key] = {"sha256": sha256, "entry": entry}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return path


def _verify(
    path: Path,
    expected: str | None,
    *,
    key: str,
    entry: str,
    zoo_dir: Path,
    delete: tuple[Path, ...] = (),
    owned: bool = True,
) -> str:
    """Check ``path`` against ``expected`` (or the recorded hash; record it if there is none).

    On a mismatch the file (and ``delete``) is removed when this cache ``owned`` it, then
    :class:`ChecksumError` is raised.
    """
    actual = sha256_of(path)
    recorded_in = None
    if expected is None:
        previous = _recorded(zoo_dir).get(key)
        if previous is None:
            where = _record(zoo_dir, key, actual, entry)
            warnings.warn(
                f"'{entry}': the catalog gives no sha256 for {key}; recorded {actual} in {where}. The entry is "
                "unverified: later downloads must match this hash.",
                UnverifiedWeightsWarning,
                stacklevel=4,
            )
            return actual
        expected, recorded_in = previous["sha256"], zoo_dir / RECORDED_SHA256
    if actual != expected:
        if owned:
            for p in (path, *delete):
                p.unlink(missing_ok=True)
        raise ChecksumError(path, expected, actual, source=key, deleted=owned, recorded_in=recorded_in)
    return actual


# --- plain HTTP(S) -------------------------------------------------------------------------------


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part`` (resumed with a Range request), then rename.

    With ``sha256`` the file is checked before it gets its final name; a mismatch deletes it and raises
    :class:`ChecksumError`. A connection that ends early raises :class:`IncompleteDownloadError` and
    keeps the ``.part`` file for the next call. An existing ``dest`` is checked and returned.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    with _locked(dest):
        if dest.is_file():
            if sha256 is not None:
                _check_download(dest, sha256, url)
            return dest
        if not resume:
            part.unlink(missing_ok=True)
        _fetch(url, part, progress=progress, timeout=timeout)
        if sha256 is not None:
            _check_download(part, sha256, url, final=dest)
        os.replace(part, dest)
    return dest


def _check_download(path: Path, expected: str, url: str, final: Path | None = None) -> None:
    actual = sha256_of(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise ChecksumError(final or path, expected, actual, source=url)


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"zoo/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is not a prefix of this file: start over
            raise
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def _fetch(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (all of it when ``part`` is absent or unusable)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError:  # 416: the range is beyond this file
        part.unlink(missing_ok=True)
        offset, response = 0, _open(url, 0, timeout)
    with response:
        if offset and response.status != 206:  # the server ignored the Range header
            offset = 0
        elif offset:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DownloadError(
                    f"{url}: the server answered Range {offset}- with "
                    f"'{response.headers.get('Content-Range')}'"
                )
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        received, error = offset, ""
        with (
            open(part, "ab" if offset else "wb") as f,
            tqdm(
                total=expected,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                file=sys.stderr,
                leave=False,
            ) as bar,
        ):
            try:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                error = type(exc).__name__
    if error or (expected is not None and received != expected):
        raise IncompleteDownloadError(url, part, received, expected, error)


def _url_cache_path(url: str, zoo_dir: Path) -> Path:
    """``<zoo>/downloads/<host>/<url path>``: readable, and one file per URL."""
    parts = urlsplit(url)
    clean = lambda s: re.sub(r"[^A-Za-z0-9._-]", "_", s)  # noqa: E731
    host = clean(parts.hostname or "host") + (f"_{parts.port}" if parts.port else "")
    segments = [clean(s) for s in parts.path.split("/") if s not in ("", ".", "..")] or ["download"]
    if parts.query:
        segments[-1] = f"{hashlib.sha256(parts.query.encode()).hexdigest()[:8]}-{segments[-1]}"
    return zoo_dir.joinpath("downloads", host, *segments)


# --- resolution ----------------------------------------------------------------------------------


def describe_source(source: WeightSource, revision: str | None = None) -> str:
    if isinstance(source, HubSource):
        return f"hub {source.repo_id}@{revision or source.revision}: {source.filename}"
    if isinstance(source, UrlSource):
        return f"url {source.url} ({source.format})"
    return f"file {source.path} ({source.format})"


class _SilentTqdm(tqdm):
    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    with contextlib.suppress(ImportError):
        import httpx2

        errors.append(httpx2.HTTPError)
    with contextlib.suppress(ImportError):
        import httpx

        errors.append(httpx.HTTPError)
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _in_hub_cache(repo_id: str, filename: str, revision: str, hub_dir: Path) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_dir), revision=revision)
    return isinstance(found, str)


def _unreachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why ``endpoint`` cannot be reached (one TCP connect), or None; proxies are trusted to know better."""
    if any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    ):
        return None
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return f"{endpoint} cannot be reached ({exc})"
    return None


def _from_hub(
    entry: CatalogEntry,
    source: HubSource,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> Path:
    from huggingface_hub import hf_hub_download

    rev = revision or source.revision
    hub_dir, offline = hub_cache_dir(cache_dir), _offline_reason()
    kwargs: dict[str, Any] = dict(
        repo_id=source.repo_id,
        filename=source.filename,
        revision=rev,
        cache_dir=str(hub_dir),
        local_files_only=offline is not None,
        library_name="zoo",
        library_version=__version__,
    )
    if os.environ.get("HF_ENDPOINT"):  # read now, not when huggingface_hub was imported
        kwargs["endpoint"] = os.environ["HF_ENDPOINT"].rstrip("/")
    if not progress:
        kwargs["tqdm_class"] = _SilentTqdm
    if not offline and not _in_hub_cache(source.repo_id, source.filename, rev, hub_dir):
        # Without network huggingface_hub retries for ~20 s before failing; a quick connect says it sooner.
        unreachable = _unreachable(kwargs.get("endpoint") or _default_endpoint())
        if unreachable:
            raise _Unavailable(f"not in the Hugging Face cache {hub_dir} and {unreachable}")
    try:
        path = Path(hf_hub_download(**kwargs))
    except _hub_errors() as exc:
        if offline:
            raise _Unavailable(
                f"not in the Hugging Face cache {hub_dir} and offline mode is on ({offline})"
            ) from None
        raise _Unavailable(f"{_first_line(exc)} (cache {hub_dir})") from None
    depth = len(source.filename.split("/"))
    commit = path.parents[depth - 1].name  # .../snapshots/<commit>/<filename>
    # The catalog's sha256 is for the catalog's revision; another revision is checked like an unhashed file.
    expected = source.sha256 if rev == source.revision else None
    blob = path.resolve()
    _verify(
        path,
        expected,
        key=f"hf://{source.repo_id}@{commit}/{source.filename}",
        entry=entry.name,
        zoo_dir=zoo_cache_dir(cache_dir),
        delete=(blob,) if blob != path else (),
    )
    return path


def _converted_path(zoo_dir: Path, entry: str, sha256: str) -> Path:
    return zoo_dir / "converted" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', entry)}-{sha256[:12]}.safetensors"


def _is_conversion_of(path: Path, sha256: str, fmt: str) -> bool:
    if not path.is_file():
        return False
    meta = read_metadata(path)
    return meta.get("source_sha256") == sha256 and meta.get("converted_from") == fmt


def _convert_once(entry: CatalogEntry, raw_path: Path, fmt: str, sha256: str, zoo_dir: Path) -> Path:
    """Convert the original at ``raw_path`` with converter ``fmt``, once; later calls reuse the result."""
    from zoo.convert import get_converter

    out = _converted_path(zoo_dir, entry.name, sha256)
    with _locked(out):
        if not _is_conversion_of(out, sha256, fmt):
            state = get_converter(fmt)(load_raw(raw_path))
            meta = {"format": "pt", "zoo_entry": entry.name, "converted_from": fmt, "source_sha256": sha256}
            save_state_dict(state, out, metadata=meta)
    return out


def _original_location(source: UrlSource | FileSource, zoo_dir: Path) -> tuple[Path, str]:
    """(local path of the original, key under which its hash is recorded)."""
    if isinstance(source, UrlSource):
        return _url_cache_path(source.url, zoo_dir), source.url
    path = Path(source.path).expanduser()
    path = path if path.is_absolute() else PACKAGE_DIR / path
    return path, str(path)


def _from_original(
    entry: CatalogEntry, source: UrlSource | FileSource, cache_dir: str | os.PathLike | None, progress: bool
) -> Path:
    zoo_dir = zoo_cache_dir(cache_dir)
    raw_path, key = _original_location(source, zoo_dir)
    known = source.sha256 or _recorded(zoo_dir).get(key, {}).get("sha256")
    if source.format != "safetensors" and known:  # converted before: the original is not needed
        converted = _converted_path(zoo_dir, entry.name, known)
        if _is_conversion_of(converted, known, source.format):
            return converted
    verified = None
    if isinstance(source, UrlSource) and not raw_path.is_file():
        offline = _offline_reason()
        if offline:
            raise _Unavailable(
                f"not downloaded yet (expected at {raw_path}) and offline mode is on ({offline})"
            )
        try:
            download_url(source.url, raw_path, sha256=source.sha256, progress=progress)
        except DownloadError as exc:
            raise _Unavailable(str(exc)) from None
        verified = source.sha256  # download_url checked it before the file got its name
    elif not raw_path.is_file():
        raise _Unavailable(f"no such file {raw_path}")
    if verified:
        sha256 = verified
    elif isinstance(source, FileSource) and source.sha256 is None:
        sha256 = sha256_of(
            raw_path
        )  # a local file is not a download: nothing to record, it names the conversion
    else:
        owned = isinstance(source, UrlSource)
        sha256 = _verify(raw_path, source.sha256, key=key, entry=entry.name, zoo_dir=zoo_dir, owned=owned)
    if source.format == "safetensors":
        return raw_path
    return _convert_once(entry, raw_path, source.format, sha256, zoo_dir)


def _unavailable_message(
    entry: CatalogEntry,
    tried: list[tuple[str, str]],
    cache_dir: str | os.PathLike | None,
    revision: str | None,
) -> str:
    if not entry.weights:  # no machine can download it: say so, and how to make the file instead
        return (
            f"'{entry.name}' has no weight source in the catalog: there is nothing to download, here or "
            f"elsewhere. Its card (`zoo card {entry.name}`) says where the original comes from; convert it "
            f'(`zoo convert FORMAT FILE OUT.safetensors`) and load it with zoo.create_model("{entry.arch}", '
            'pretrained="OUT.safetensors").'
        )
    offline = _offline_reason()
    hub_dir, zoo_dir = hub_cache_dir(cache_dir), zoo_cache_dir(cache_dir)
    state = f" (offline: {offline})" if offline else ""
    lines = [f"no weights for '{entry.name}' could be found{state}. Tried, in order:"]
    lines += [f"  {i}. {what}: {why}" for i, (what, why) in enumerate(tried, 1)]
    rev = f" --revision {revision}" if revision else ""
    where = (
        "or pass cache_dir= / --cache-dir pointing at the copy"
        if cache_dir is not None
        else "or point HF_HUB_CACHE and ZOO_CACHE at the copies"
    )
    lines += [
        "To provide them, either:",
        f"  - on a machine with network access run `zoo download {entry.name}{rev}`, then copy {hub_dir} and "
        f"{zoo_dir} to the same paths here ({where});",
    ]
    for source in entry.weights:
        if isinstance(source, UrlSource | FileSource):
            path, _ = _original_location(source, zoo_dir)
            sha = f" (sha256 {source.sha256} is checked)" if source.sha256 else ""
            lines.append(f"  - or put the original file from {describe_source(source)} at {path}{sha};")
    lines.append(
        '  - or load a local copy directly: zoo.load("/path/to/folder") for a folder with config.json and '
        'model.safetensors, or zoo.create_model(arch, pretrained="/path/to/weights.safetensors").'
    )
    return "\n".join(lines)


def resolve(
    entry: CatalogEntry,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """A local, verified safetensors file (or legacy pickle from a Hub source) with ``entry``'s weights.

    Sources are tried in catalog order: Hub (``hf_hub_download``; ``revision`` overrides the catalog's),
    URL (downloaded into the zoo cache, converted once when ``format`` names a converter), local file.
    A checksum mismatch raises :class:`ChecksumError` at once; when no source can give a file,
    :class:`WeightsUnavailableError` lists what was tried and how to provide the weights.
    """
    tried: list[tuple[str, str]] = []
    for source in entry.weights:
        try:
            if isinstance(source, HubSource):
                return _from_hub(entry, source, revision, cache_dir, progress)
            return _from_original(entry, source, cache_dir, progress)
        except _Unavailable as exc:
            tried.append(
                (describe_source(source, revision if isinstance(source, HubSource) else None), str(exc))
            )
    raise WeightsUnavailableError(entry.name, _unavailable_message(entry, tried, cache_dir, revision), tried)


def download(
    name_or_entry: str | CatalogEntry,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Fetch (and convert) a catalog checkpoint into the cache; ``zoo download NAME``."""
    from zoo.catalog import get_entry

    entry = get_entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    return resolve(entry, revision=revision, cache_dir=cache_dir, progress=progress)


# --- local folders -------------------------------------------------------------------------------


def load_folder(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state_dict) of a Hub-style folder: ``config.json`` + ``model.safetensors`` (see zoo.publish)."""
    folder = Path(path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder}: no config.json (a zoo weights folder holds config.json and "
            "model.safetensors, as written by `zoo publish`)"
        )
    config = json.loads(config_path.read_text())
    weights = folder / config.get("weights_file", "model.safetensors")
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: config.json names {weights.name}, which is missing")
    expected = config.get("weights_sha256")
    if expected is not None and (actual := sha256_of(weights)) != expected:
        raise ChecksumError(weights, expected, actual, source=str(config_path), deleted=False)
    return config, load_state_dict(weights)
