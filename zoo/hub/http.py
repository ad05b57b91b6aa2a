"""A plain HTTP(S) download client: resume only what provably is the same file, guard redirects and stalls.

A download goes to ``<dest>.part``; the server's validator (ETag, else Last-Modified) is stored next to
it in ``<dest>.part.json``. A later attempt asks for the rest with ``Range`` and ``If-Range``: the
server answers 206 only if the file is unchanged, otherwise it sends the whole new file and the
download starts over. A ``.part`` without a stored validator (or stored for another URL) is
discarded, so two versions of a file are never spliced together. The body must keep arriving at a
minimum rate (``ZOO_DOWNLOAD_MIN_RATE`` bytes/s over ``ZOO_DOWNLOAD_WINDOW`` seconds).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from zoo import __version__
from zoo.errors import UsageError
from zoo.hub.cache import CHUNK, locked, sha256_of
from zoo.hub.errors import (
    ChecksumError,
    DownloadError,
    IncompleteDownloadError,
    StalledDownloadError,
    UntrustedRedirectError,
)

DEFAULT_MIN_RATE = 1024.0  # bytes per second, averaged over a window
DEFAULT_WINDOW = 30.0  # seconds


@dataclass(frozen=True)
class StallGuard:
    """A body slower than ``min_rate`` bytes/s over any ``window`` seconds is abandoned."""

    min_rate: float = DEFAULT_MIN_RATE
    window: float = DEFAULT_WINDOW

    @classmethod
    def from_env(cls) -> StallGuard:
        """``ZOO_DOWNLOAD_MIN_RATE`` (bytes/s) and ``ZOO_DOWNLOAD_WINDOW`` (seconds), else the defaults."""
        values = {}
        for field, var, default in (
            ("min_rate", "ZOO_DOWNLOAD_MIN_RATE", DEFAULT_MIN_RATE),
            ("window", "ZOO_DOWNLOAD_WINDOW", DEFAULT_WINDOW),
        ):
            text = os.environ.get(var, "").strip()
            try:
                values[field] = float(text) if text else default
            except ValueError:
                raise UsageError(f"{var}={text!r} is not a number") from None
            if values[field] < 0 or (field == "window" and values[field] == 0):
                raise UsageError(f"{var}={text!r} must be positive")
        return cls(**values)


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, as compared by the redirect policy."""
    parts = urlsplit(url)
    return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")


class _RedirectGuard(urllib.request.HTTPRedirectHandler):
    """Follow redirects on the same host; to another host only when ``cross_host`` allows it."""

    def __init__(self, cross_host: bool):
        self.cross_host = cross_host

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not self.cross_host and host_of(newurl) != host_of(req.full_url):
            fp.close()
            raise UntrustedRedirectError(req.full_url, newurl, host_of(req.full_url), host_of(newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _validator_of(response: http.client.HTTPResponse) -> dict[str, str] | None:
    """A strong ETag, else Last-Modified (what ``If-Range`` can check), else None."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return {"etag": etag}
    modified = response.headers.get("Last-Modified")
    return {"last_modified": modified} if modified else None


def _stored_validator(part: Path, url: str) -> dict[str, str] | None:
    """The validator stored with ``part`` for ``url``; a ``.part`` of unknown origin is deleted."""
    meta = _validator_path(part)
    stored = None
    if part.is_file() and meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        if isinstance(data, dict) and data.get("url") == url:
            stored = {k: data[k] for k in ("etag", "last_modified") if isinstance(data.get(k), str)} or None
    if stored is None:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
    return stored


def _open(
    url: str, offset: int, validator: dict[str, str] | None, timeout: float, cross_host: bool
) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"zoo/{__version__}", "Accept-Encoding": "identity"}
    if offset and validator:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator.get("etag") or validator["last_modified"]
    opener = urllib.request.build_opener(_RedirectGuard(cross_host))
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except UntrustedRedirectError:
        raise
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None


def _same_file(response: http.client.HTTPResponse, offset: int, validator: dict[str, str]) -> bool:
    """Whether a 206 answer continues the stored file at ``offset`` (a server may ignore If-Range)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != offset:
        return False
    now = _validator_of(response)
    return now is None or now == validator


def _fetch(
    url: str, part: Path, *, progress: bool, timeout: float, cross_host: bool, guard: StallGuard
) -> None:
    """Write ``url`` into ``part``, continuing it when the server proves it is the same file."""
    part.parent.mkdir(parents=True, exist_ok=True)
    validator = _stored_validator(part, url)
    offset = part.stat().st_size if validator else 0
    response = _open(url, offset, validator, min(timeout, guard.window), cross_host)
    with response:
        if offset and not (response.status == 206 and _same_file(response, offset, validator)):
            offset = 0  # the file changed (or the server cannot resume): start over with this body
            if response.status == 206:
                response.close()
                _validator_path(part).unlink(missing_ok=True)
                part.unlink(missing_ok=True)
                return _fetch(
                    url, part, progress=progress, timeout=timeout, cross_host=cross_host, guard=guard
                )
        if not offset:
            validator = _validator_of(response)
            meta = _validator_path(part)
            if validator:
                meta.write_text(json.dumps({"url": url, **validator}))
            else:
                meta.unlink(missing_ok=True)
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        received, error = _copy_body(response, part, offset, expected, progress, guard)
    if error or (expected is not None and received != expected):
        resumable = validator is not None
        if not resumable:
            part.unlink(missing_ok=True)
        kind = StalledDownloadError if error.startswith("slower") else IncompleteDownloadError
        raise kind(url, part, received, expected, error, resumable=resumable)
    return None


def _copy_body(
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    expected: int | None,
    progress: bool,
    guard: StallGuard,
) -> tuple[int, str]:
    """Append the body to ``part``; (bytes in ``part``, why it stopped early or '')."""
    received, error = offset, ""
    window_start, window_bytes = time.monotonic(), 0
    bar_args: dict[str, Any] = dict(
        unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False
    )
    with (
        open(part, "ab" if offset else "wb") as f,
        tqdm(
            total=expected,
            initial=offset,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
            **bar_args,
        ) as bar,
    ):
        try:
            for chunk in iter(
                lambda: response.read1(CHUNK), b""
            ):  # read1: whatever arrived, no waiting for more
                f.write(chunk)
                received += len(chunk)
                window_bytes += len(chunk)
                bar.update(len(chunk))
                elapsed = time.monotonic() - window_start
                if elapsed >= guard.window:
                    if window_bytes < guard.min_rate * elapsed:
                        return received, (
                            f"slower than {guard.min_rate:g} bytes/s over {elapsed:.1f} s: {window_bytes} bytes "
                            "(ZOO_DOWNLOAD_MIN_RATE, ZOO_DOWNLOAD_WINDOW)"
                        )
                    window_start, window_bytes = time.monotonic(), 0
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            error = type(exc).__name__
    return received, error


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
    cross_host_redirects: bool | None = None,
    stall_guard: StallGuard | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part``, then rename.

    With ``sha256`` the file is checked before it gets its final name; a mismatch deletes it and raises
    :class:`ChecksumError`. A connection that ends early raises :class:`IncompleteDownloadError`; the
    ``.part`` file is kept only when it can be resumed safely. An existing ``dest`` is checked and
    returned.

    Args:
        url: what to download.
        dest: the final path.
        sha256: the expected hash, checked before the rename.
        resume: continue a kept ``.part`` (after the server confirms the file is unchanged).
        progress: show a progress bar on stderr.
        timeout: seconds to wait for the connection or for any bytes.
        cross_host_redirects: follow a redirect to another host; default: only when ``sha256`` is given.
        stall_guard: the minimum rate; default :meth:`StallGuard.from_env`.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    cross_host = sha256 is not None if cross_host_redirects is None else cross_host_redirects
    with locked(dest):
        if dest.is_file():
            if sha256 is not None:
                _check_download(dest, sha256, url)
            return dest
        if not resume:
            part.unlink(missing_ok=True)
            _validator_path(part).unlink(missing_ok=True)
        _fetch(
            url,
            part,
            progress=progress,
            timeout=timeout,
            cross_host=cross_host,
            guard=stall_guard or StallGuard.from_env(),
        )
        if sha256 is not None:
            _check_download(part, sha256, url, final=dest)
        os.replace(part, dest)
        _validator_path(part).unlink(missing_ok=True)
    return dest


def _check_download(path: Path, expected: str, url: str, final: Path | None = None) -> None:
    actual = sha256_of(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        _validator_path(path).unlink(missing_ok=True)
        raise ChecksumError(final or path, expected, actual, source=url)
