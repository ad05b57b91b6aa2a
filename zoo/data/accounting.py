"""Counts kept over every DataLoader worker: what was read, what could not be, and its limit.

A DataLoader's workers are other processes, so anything they count lives in shared memory (it survives fork
and pickling to spawned workers), one row per process — the main process and each worker id — so that no
two processes add to the same number::

    counts = WorkerCounts(2)  # e.g. (loaded, failed)
    counts.add(0)  # in a worker: its own row
    counts.totals()  # in the main process: the sum over rows

:class:`UnreadableSamples` is what a dataset keeps of the samples it cannot read: a flag per sample (skipped
without another try), the loaded / failed counts, a warning naming each sample once, one JSON line per sample
in an error log, and an error once more than ``max_error_fraction`` of the samples turned out unreadable.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import get_worker_info

from zoo.errors import UsageError

__all__ = ["UnreadableSamples", "WorkerCounts"]


class WorkerCounts:
    """``columns`` counters per process (row 0: the main process, row 1 + i: worker i), in shared memory.

    Args:
        columns: how many numbers each process counts.
        rows: rows kept; worker ids beyond them share rows modulo (sums stay right, only races come back).
    """

    def __init__(self, columns: int, rows: int = 256):
        self._counts = torch.zeros(rows, columns, dtype=torch.int64).share_memory_()  # (rows, columns)

    def add(self, column: int, value: int = 1) -> None:
        """Add ``value`` to ``column`` of this process's row."""
        info = get_worker_info()
        row = 0 if info is None else 1 + info.id % (len(self._counts) - 1)
        self._counts[row, column] += value

    def totals(self) -> list[int]:
        """Each column summed over every process."""
        return [int(v) for v in self._counts.sum(dim=0)]

    def reset(self) -> None:
        """Count from zero again."""
        self._counts.zero_()


class UnreadableSamples:
    """The unreadable samples of a dataset of ``len(names)`` samples, over every worker.

    Args:
        names: what messages call each sample (a path, ``<shard>#<key>``).
        noun: what a sample is in messages, plural (``"videos"``, ``"samples"``).
        warning: the warning class that names a skipped sample.
        on_error: ``"skip"`` unreadable samples (counted, warned) or ``"raise"`` (the caller raises).
        max_error_fraction: stop when more than this fraction of the samples turned out unreadable.
        error_log: append one JSON line ``{"path", "reason", "index"}`` per unreadable sample to this file.
        unreadable: how messages say a sample could not be read.
        hint: a sentence added to the error past ``max_error_fraction``.
    """

    LOADED, FAILED = 0, 1

    def __init__(
        self,
        names: Sequence[str],
        noun: str,
        warning: type[Warning],
        on_error: str = "skip",
        max_error_fraction: float = 0.1,
        error_log: str | os.PathLike | None = None,
        unreadable: str = "could not be read",
        hint: str = "",
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise UsageError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if not 0.0 <= max_error_fraction <= 1.0:
            raise UsageError(f"max_error_fraction must be in [0, 1], got {max_error_fraction}")
        self.names, self.noun, self.warning = [str(n) for n in names], noun, warning
        self.unreadable, self.hint = unreadable, hint
        self.on_error, self.max_error_fraction = on_error, max_error_fraction
        self.error_log = Path(error_log) if error_log else None
        self._bad = torch.zeros(len(self.names), dtype=torch.uint8).share_memory_()  # (N,) flags
        self.counts = WorkerCounts(2)  # (loaded, failed attempts)

    def is_known_bad(self, index: int) -> bool:
        """Whether sample ``index`` already failed (and is skipped without another try)."""
        return bool(self._bad[index]) and self.on_error == "skip"

    def loaded(self) -> None:
        """Count one sample read."""
        self.counts.add(self.LOADED)

    def failed(self, index: int, reason: str, label: str | None = None) -> None:
        """Count sample ``index`` as unreadable for ``reason``: flagged, named once (``label``: how the warning
        calls it, default its name), logged; a RuntimeError past ``max_error_fraction``."""
        name = self.names[index]
        self.counts.add(self.FAILED)
        if not self._bad[index]:
            self._bad[index] = 1
            where = reason if name in reason else f"{name!r}: {reason}"
            warnings.warn(f"skipping unreadable {label or 'sample'}: {where}", self.warning, stacklevel=3)
            if self.error_log is not None:
                line = json.dumps({"path": name, "reason": reason, "index": index}) + "\n"
                fd = os.open(self.error_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, line.encode())  # one write per line: atomic between processes
                finally:
                    os.close(fd)
        bad = int(self._bad.sum())
        if bad > self.max_error_fraction * len(self.names):
            raise RuntimeError(
                f"{bad} of {len(self.names)} {self.noun} ({bad / len(self.names):.1%}) {self.unreadable}, more "
                f"than max_error_fraction={self.max_error_fraction}; last: {name!r}: {reason}.{self.hint}"
            )

    def stats(self) -> dict[str, Any]:
        """``loaded``, ``failed`` (attempts), ``bad_records`` (distinct), ``bad_fraction``, ``bad_paths``."""
        loaded, failed = self.counts.totals()
        bad = torch.nonzero(self._bad).flatten().tolist()
        return {
            "loaded": loaded,
            "failed": failed,
            "bad_records": len(bad),
            "bad_fraction": len(bad) / max(len(self.names), 1),
            "bad_paths": [self.names[i] for i in bad],
        }

    def state(self) -> torch.Tensor:
        """The flags ``(N,)`` uint8 (a copy), saved with a run's checkpoint."""
        return self._bad.clone()

    def load_state(self, bad: torch.Tensor) -> None:
        """Restore :meth:`state` (one of another length is ignored: other samples)."""
        if bad.shape == self._bad.shape:
            self._bad.copy_(bad)
