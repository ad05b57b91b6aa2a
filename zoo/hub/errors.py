"""What can go wrong while getting weights; each message names the file, URL or host involved."""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import UsageError


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
        basis: str | None = None,
    ):
        self.path, self.expected, self.actual, self.deleted = str(path), expected, actual, deleted
        origin = f" (from {source})" if source else ""
        if recorded_in is not None:
            basis = f"the sha256 recorded in {recorded_in}"
            advice = f"if the file changed on purpose, remove its line from {recorded_in} and try again"
        else:
            basis = basis or "the catalog's sha256"
            advice = "the download was corrupted or the file changed upstream; try again or report it"
        fate = "The file was deleted" if deleted else "The file was left in place"
        super().__init__(
            f"sha256 mismatch for {path}{origin}: expected {expected} ({basis}), got {actual}. "
            f"{fate}; {advice}."
        )


class DownloadError(OSError):
    """An HTTP(S) download failed (no network, HTTP error, refused redirect)."""


class IncompleteDownloadError(DownloadError):
    """The connection ended before the whole file arrived.

    The partial file is kept for resuming only when the server gave a validator (ETag or
    Last-Modified) that proves a later request reads the same file; otherwise it is deleted.
    """

    def __init__(
        self,
        url: str,
        partial: Path,
        received: int,
        expected: int | None,
        reason: str = "",
        resumable: bool = True,
    ):
        self.url, self.partial, self.received, self.expected = url, partial, received, expected
        self.resumable = resumable
        total = f" of {expected}" if expected is not None else ""
        why = f" ({reason})" if reason else ""
        fate = (
            f"the partial file is kept at {partial} and the next attempt resumes it if the server still "
            "serves the same file"
            if resumable
            else "the server gave no ETag or Last-Modified to resume against, so the partial file was "
            "deleted and the next attempt starts over"
        )
        super().__init__(f"download of {url} stopped after {received}{total} bytes{why}; {fate}")


class StalledDownloadError(IncompleteDownloadError):
    """The body arrived slower than the minimum rate over a whole window (``ZOO_DOWNLOAD_MIN_RATE``)."""


class UntrustedRedirectError(DownloadError):
    """A download without a pinned sha256 was redirected to another host; the redirect was not followed."""

    def __init__(self, url: str, target: str, from_host: str, to_host: str):
        self.url, self.target, self.from_host, self.to_host = url, target, from_host, to_host
        super().__init__(
            f"{url} redirects from host {from_host} to another host, {to_host} ({target}); a redirect to "
            "another host is followed only for a source with a sha256 in the catalog, so this one was refused"
        )


class WeightsUnavailableError(RuntimeError):
    """None of an entry's weight sources could give a file (offline with an empty cache, network errors)."""

    def __init__(self, name: str, message: str, tried: list[tuple[str, str]]):
        self.name, self.tried = name, tried
        super().__init__(message)


class ProvenanceError(UsageError):
    """The file of recorded hashes cannot be read; names it and says how to start over."""


class UnsafeFolderError(UsageError):
    """A weights folder's config.json names weights outside the folder, or gives no sha256 for them."""


class UnverifiedWeightsWarning(UserWarning):
    """A file was accepted without a catalog sha256; its hash was recorded for later checks."""


class Unavailable(Exception):
    """This source cannot give the file now (not cached while offline, network or HTTP failure)."""
