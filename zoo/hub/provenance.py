"""Provenance records: ``<zoo cache>/recorded_sha256.json``, the hashes zoo recorded itself.

A file the catalog gives no sha256 for is recorded on its first download (key: its URL or Hub path);
a file zoo converted is recorded when it is written (key: ``converted/<file name>``). Later reads
must match the record. The file is JSON, one object per key; deleting a line (or the file) makes
zoo record afresh.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zoo.hub.cache import locked
from zoo.hub.errors import ProvenanceError

RECORDED_SHA256 = "recorded_sha256.json"


def records_path(zoo_dir: Path) -> Path:
    return zoo_dir / RECORDED_SHA256


def read_records(zoo_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record (empty when nothing was recorded); a damaged file is a :class:`ProvenanceError`."""
    path = records_path(zoo_dir)
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProvenanceError(_damaged(path, f"not valid JSON ({exc})")) from None
    if not isinstance(table, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in table.values()
    ):
        raise ProvenanceError(_damaged(path, 'expected {"<key>": {"sha256": "<hex>", ...}, ...}'))
    return table


def _damaged(path: Path, why: str) -> str:
    return (
        f"{path}: the file of recorded sha256 hashes is damaged: {why}. Delete it (the hashes it held "
        "are recorded again on the next download) or repair it by hand"
    )


def lookup(zoo_dir: Path, key: str) -> dict[str, Any] | None:
    """The record under ``key``, or None."""
    return read_records(zoo_dir).get(key)


def record(zoo_dir: Path, key: str, sha256: str, **fields: str) -> Path:
    """Record ``sha256`` (and ``fields``) under ``key``; returns the records file."""
    path = records_path(zoo_dir)
    with locked(path):
        table = read_records(zoo_dir)
        table[key] = {"sha256": sha256, **fields}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return path
