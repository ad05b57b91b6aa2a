"""Where files live: the cache layout, package-relative files, hashing and inter-process locks.

Cache layout (``cache_dir=`` puts both parts under one folder: ``<cache_dir>/hub`` and ``<cache_dir>/zoo``)::

    <hub cache>/models--org--name/...            Hub files, huggingface_hub's layout (HF_HOME / HF_HUB_CACHE)
    <zoo cache>/downloads/<host>/<url hash>/<file>   originals fetched over HTTP(S)  ($ZOO_CACHE or ~/.cache/zoo)
    <zoo cache>/converted/<entry>-<sha12>.safetensors   originals converted to zoo's keys
    <zoo cache>/recorded_sha256.json             hashes recorded where the catalog gives none (provenance)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock

from zoo.errors import UsageError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20


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


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def url_cache_path(url: str, zoo_dir: Path) -> Path:
    """``<zoo>/downloads/<host>/<url hash>/<file name>``: readable, and one file per distinct URL.

    The folder is named by a hash of the whole URL (scheme, host, path, query), so URLs that differ
    only in characters the file system cannot hold never share a file.
    """
    parts = urlsplit(url)
    host = _clean(parts.hostname or "host") + (f"_{parts.port}" if parts.port else "")
    name = _clean(parts.path.rstrip("/").rsplit("/", 1)[-1]) or "download"
    if name in (".", ".."):
        name = "download"
    return zoo_dir / "downloads" / host / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def converted_path(zoo_dir: Path, entry: str, sha256: str) -> Path:
    """Where the conversion of the original with hash ``sha256`` for ``entry`` is cached."""
    return zoo_dir / "converted" / f"{_clean(entry)}-{sha256[:12]}.safetensors"


def package_path(path: str) -> Path:
    """An absolute path as given, or a path relative to the ``zoo`` package that must stay inside it."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    resolved = (PACKAGE_DIR / given).resolve()
    if not resolved.is_relative_to(PACKAGE_DIR):
        raise UsageError(f"file source {path!r} leaves the zoo package folder {PACKAGE_DIR}; refused")
    return PACKAGE_DIR / given


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An inter-process lock for work on ``path`` (several ranks may resolve the same weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        yield
