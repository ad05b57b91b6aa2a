"""The trust policy: what zoo verifies before it uses a weights file, and what it records.

Read top to bottom; every path that hands weights to a model goes through one of these functions.

1. A file with a sha256 in the catalog (or in a published folder's ``config.json``) is used only if
   its bytes hash to it. A cached download that does not match is deleted; a file zoo does not own
   (a local file, a folder) is left in place. Either way the load fails with :class:`ChecksumError`.
2. A file without one (``sha256: null``, e.g. most authors' original URLs) is first checked to parse
   as its format (a body cut short is deleted, not recorded), then its hash is recorded in
   ``recorded_sha256.json`` with an :class:`UnverifiedWeightsWarning`; from then on it is held to
   that hash like a catalog one. A local ``file:`` source without a hash is used as is and not
   recorded (it is not a download).
3. Downloads: a partial file is resumed only when the server proves with ``If-Range`` that it still
   serves the same file; a redirect to another host is followed only for a source with a catalog
   sha256 (nothing else could tell a substituted file); a body that trickles below a minimum rate is
   abandoned (see :mod:`zoo.hub.http`).
4. A converted original is recorded (its sha256, with the hash of the original it came from) when
   it is written, and checked on every load; a converted file that does not match is deleted with a
   warning and rebuilt from the verified original.
5. A published folder (``config.json`` + weights) must give ``weights_sha256``; its weights file must
   lie inside the folder (for a Hub snapshot: in that repository's cache), symlinks included.
6. Tensors holding NaN or Inf are refused unless the caller passes ``allow_nonfinite=True``; tensors
   cast to the model's dtype on loading are named in a warning (see :mod:`zoo.api`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from zoo.errors import WeightsFileError
from zoo.hub import provenance
from zoo.hub.cache import sha256_of
from zoo.hub.errors import ChecksumError, UnsafeFolderError, UnverifiedWeightsWarning
from zoo.serialization import check_readable


def verify_file(
    path: Path,
    expected: str | None,
    *,
    key: str,
    entry: str,
    zoo_dir: Path,
    delete: tuple[Path, ...] = (),
    owned: bool = True,
) -> str:
    """Rules 1 and 2: check ``path`` against ``expected``, else against (or into) the provenance record.

    Returns the file's sha256. On a mismatch, or an unhashed file that does not parse, the file (and
    ``delete``) is removed when this cache ``owned`` it.

    Args:
        path: the local file.
        expected: the catalog's sha256, or None.
        key: what the file is recorded under (its URL or Hub path).
        entry: the catalog entry, for messages and the record.
        zoo_dir: the zoo cache holding the provenance records.
        delete: other paths to remove with ``path`` (e.g. the Hub blob behind a snapshot link).
        owned: whether the cache owns ``path`` (and may delete it).
    """
    actual = sha256_of(path)
    recorded_in = None
    if expected is None:
        previous = provenance.lookup(zoo_dir, key)
        if previous is None:
            _require_readable(path, delete if owned else None)
            where = provenance.record(zoo_dir, key, actual, entry=entry)
            warnings.warn(
                f"'{entry}': the catalog gives no sha256 for {key}; recorded {actual} in {where}. The entry is "
                "unverified: later downloads must match this hash.",
                UnverifiedWeightsWarning,
                stacklevel=4,
            )
            return actual
        expected, recorded_in = previous["sha256"], provenance.records_path(zoo_dir)
    if actual != expected:
        if owned:
            for p in (path, *delete):
                p.unlink(missing_ok=True)
        raise ChecksumError(path, expected, actual, source=key, deleted=owned, recorded_in=recorded_in)
    return actual


def _require_readable(path: Path, delete: tuple[Path, ...] | None) -> None:
    """An unhashed file must at least parse as weights; a broken download is deleted, never recorded."""
    try:
        check_readable(path)
    except WeightsFileError as exc:
        if delete is not None:
            for p in (path, *delete):
                p.unlink(missing_ok=True)
            raise WeightsFileError(path, f"{exc.detail}. It was deleted and not recorded") from None
        raise


def follows_cross_host_redirects(catalog_sha256: str | None) -> bool:
    """Rule 3: another host may serve the file only when the catalog's hash can tell a substitute."""
    return catalog_sha256 is not None


def _converted_key(path: Path) -> str:
    return f"converted/{path.name}"


def record_converted(path: Path, *, entry: str, source_sha256: str, fmt: str, zoo_dir: Path) -> None:
    """Rule 4, at conversion: record the converted file's hash and what it was made from."""
    provenance.record(
        zoo_dir, _converted_key(path), sha256_of(path), entry=entry, source_sha256=source_sha256, format=fmt
    )


def converted_is_intact(path: Path, *, source_sha256: str, fmt: str, zoo_dir: Path) -> bool:
    """Rule 4, at every load: whether ``path`` is the recorded conversion of that original.

    A converted file that exists but does not match its record is deleted with a warning naming it,
    so that the caller rebuilds it.
    """
    if not path.is_file():
        return False
    record = provenance.lookup(zoo_dir, _converted_key(path))
    if record is None:
        problem = "it has no record"
    elif record.get("source_sha256") != source_sha256 or record.get("format") != fmt:
        problem = "it was made from another original"
    elif (actual := sha256_of(path)) != record["sha256"]:
        problem = f"its sha256 is {actual}, not the {record['sha256']} recorded when it was written"
    else:
        return True
    path.unlink(missing_ok=True)
    warnings.warn(
        f"{path}: discarded the converted weights ({problem} in {provenance.records_path(zoo_dir)}); "
        "they are rebuilt from the verified original",
        UnverifiedWeightsWarning,
        stacklevel=4,
    )
    return False


def folder_weights(folder: Path, config: dict, config_path: Path) -> Path:
    """Rule 5: the weights file a folder's ``config.json`` names, inside the folder and hash-checked."""
    name = config.get("weights_file", "model.safetensors")
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise UnsafeFolderError(f"{config_path}: weights_file {name!r} must be a file name inside {folder}")
    weights = folder / name
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: config.json names {name}, which is missing")
    real, allowed = weights.resolve(), [folder.resolve()]
    if folder.parent.name == "snapshots":  # a Hub snapshot links into its repository's blobs/
        allowed.append(folder.resolve().parent.parent / "blobs")
    if not any(real.is_relative_to(a) for a in allowed):
        raise UnsafeFolderError(f"{config_path}: weights_file {name} leads outside {folder} (to {real})")
    expected = config.get("weights_sha256")
    actual = sha256_of(weights)
    if expected is None:
        raise UnsafeFolderError(
            f"{config_path}: no weights_sha256, so {weights} cannot be verified; if you trust the file, add "
            f'"weights_sha256": "{actual}" to config.json (zoo publish writes it)'
        )
    if actual != expected:
        raise ChecksumError(
            weights,
            expected,
            actual,
            source=str(config_path),
            deleted=False,
            basis="the sha256 in config.json",
        )
    return weights
