"""A catalog entry's weight sources, tried in order: Hub mirror, original URL, local file.

:func:`resolve` walks the sources once and returns the first that gives a verified local
safetensors file (a pickled original is converted once and the result cached). What is verified
and recorded at each step is decided in :mod:`zoo.hub.trust`.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.catalog import CatalogEntry, FileSource, HubSource, UrlSource, WeightSource
from zoo.hub import provenance, trust
from zoo.hub.cache import (
    converted_path,
    hub_cache_dir,
    locked,
    package_path,
    sha256_of,
    url_cache_path,
    zoo_cache_dir,
)
from zoo.hub.errors import DownloadError, Unavailable, WeightsUnavailableError
from zoo.hub.hf import from_hub
from zoo.hub.http import download_url
from zoo.hub.offline import offline_reason
from zoo.serialization import save_state_dict


def describe_source(source: WeightSource, revision: str | None = None) -> str:
    """One line naming a source, as used in error messages."""
    if isinstance(source, HubSource):
        return f"hub {source.repo_id}@{revision or source.revision}: {source.filename}"
    if isinstance(source, UrlSource):
        return f"url {source.url} ({source.format})"
    return f"file {source.path} ({source.format})"


def _original_location(source: UrlSource | FileSource, zoo_dir: Path) -> tuple[Path, str]:
    """(local path of the original, key under which its hash is recorded)."""
    if isinstance(source, UrlSource):
        return url_cache_path(source.url, zoo_dir), source.url
    path = package_path(source.path)
    return path, str(path)


def _convert_once(entry: CatalogEntry, raw_path: Path, fmt: str, sha256: str, zoo_dir: Path) -> Path:
    """Convert the verified original at ``raw_path`` with converter ``fmt``, once; record the result."""
    from zoo.convert import convert_file

    out = converted_path(zoo_dir, entry.name, sha256)
    with locked(out):
        if not trust.converted_is_intact(out, source_sha256=sha256, fmt=fmt, zoo_dir=zoo_dir):
            state = convert_file(fmt, raw_path)
            meta = {"format": "pt", "zoo_entry": entry.name, "converted_from": fmt, "source_sha256": sha256}
            save_state_dict(state, out, metadata=meta)
            trust.record_converted(out, entry=entry.name, source_sha256=sha256, fmt=fmt, zoo_dir=zoo_dir)
    return out


def _from_original(
    entry: CatalogEntry, source: UrlSource | FileSource, cache_dir: str | os.PathLike | None, progress: bool
) -> Path:
    zoo_dir = zoo_cache_dir(cache_dir)
    raw_path, key = _original_location(source, zoo_dir)
    known = source.sha256 or (provenance.lookup(zoo_dir, key) or {}).get("sha256")
    if source.format != "safetensors" and known:  # converted before: the original is not needed
        converted = converted_path(zoo_dir, entry.name, known)
        with locked(converted):
            if trust.converted_is_intact(converted, source_sha256=known, fmt=source.format, zoo_dir=zoo_dir):
                return converted
    verified = None
    if isinstance(source, UrlSource) and not raw_path.is_file():
        offline = offline_reason()
        if offline:
            raise Unavailable(
                f"not downloaded yet (expected at {raw_path}) and offline mode is on ({offline})"
            )
        try:
            download_url(
                source.url,
                raw_path,
                sha256=source.sha256,
                progress=progress,
                cross_host_redirects=trust.follows_cross_host_redirects(source.sha256),
            )
        except DownloadError as exc:
            raise Unavailable(str(exc)) from None
        verified = source.sha256  # download_url checked it before the file got its name
    elif not raw_path.is_file():
        raise Unavailable(f"no such file {raw_path}")
    if verified:
        sha256 = verified
    elif isinstance(source, FileSource) and source.sha256 is None:
        sha256 = sha256_of(
            raw_path
        )  # a local file is not a download: nothing to record, it names the conversion
    else:
        owned = isinstance(source, UrlSource)
        sha256 = trust.verify_file(
            raw_path, source.sha256, key=key, entry=entry.name, zoo_dir=zoo_dir, owned=owned
        )
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
            'pretrained="./OUT.safetensors").'
        )
    offline = offline_reason()
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

    Args:
        entry: the catalog entry.
        revision: a Hub revision overriding the catalog's.
        cache_dir: one folder for both caches (``<cache_dir>/hub`` and ``<cache_dir>/zoo``).
        progress: show download progress bars.
    """
    tried: list[tuple[str, str]] = []
    for source in entry.weights:
        try:
            if isinstance(source, HubSource):
                return from_hub(entry, source, revision, cache_dir, progress)
            return _from_original(entry, source, cache_dir, progress)
        except Unavailable as exc:
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
    """Fetch (and convert) a catalog checkpoint into the cache; ``zoo download NAME``.

    Args:
        name_or_entry: a catalog name or entry.
        revision: a Hub revision overriding the catalog's.
        cache_dir: one folder for both caches.
        progress: show download progress bars.
    """
    from zoo.catalog import get_entry

    entry = get_entry(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    return resolve(entry, revision=revision, cache_dir=cache_dir, progress=progress)
