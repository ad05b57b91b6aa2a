"""Counts kept over DataLoader workers (zoo/data/accounting.py): shared by every unreadable-sample path."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data.accounting import UnreadableSamples, WorkerCounts


class _Counted(Dataset):
    def __init__(self, counts: WorkerCounts):
        self.counts = counts

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> int:
        self.counts.add(0)
        self.counts.add(1, index)
        return index


def test_worker_counts_add_up_over_worker_processes():
    counts = WorkerCounts(2)
    assert sorted(DataLoader(_Counted(counts), batch_size=None, num_workers=2)) == list(range(10))
    assert counts.totals() == [10, 45]
    counts.reset()
    assert counts.totals() == [0, 0]


class _Warned(UserWarning):
    pass


def test_each_unreadable_sample_is_flagged_named_once_and_logged(tmp_path):
    log = tmp_path / "errors.jsonl"
    unreadable = UnreadableSamples([f"s{i}" for i in range(10)], "samples", _Warned, error_log=log)
    with pytest.warns(_Warned, match=r"skipping unreadable sample: 's3': broken") as caught:
        unreadable.failed(3, "broken")
        unreadable.failed(3, "broken")  # a second attempt: counted, not named again
    assert len(caught) == 1 and unreadable.is_known_bad(3) and not unreadable.is_known_bad(4)
    unreadable.loaded()
    stats = unreadable.stats()
    assert (stats["loaded"], stats["failed"], stats["bad_records"], stats["bad_paths"]) == (1, 2, 1, ["s3"])
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"path": "s3", "reason": "broken", "index": 3}
    ]
    restored = UnreadableSamples([f"s{i}" for i in range(10)], "samples", _Warned)
    restored.load_state(unreadable.state())
    assert restored.is_known_bad(3)


def test_past_max_error_fraction_loading_stops_with_the_counts_and_the_hint():
    unreadable = UnreadableSamples(
        ["a", "b", "c", "d"], "videos", _Warned, max_error_fraction=0.25, unreadable="could not be decoded",
        hint=" Run the check.",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _Warned)
        unreadable.failed(0, "bad")  # 1 of 4: at the limit, not past it
        with pytest.raises(
            RuntimeError,
            match=r"^2 of 4 videos \(50.0%\) could not be decoded, .*'b': bad\. Run the check\.$",
        ):
            unreadable.failed(1, "bad")


def test_bad_settings_are_usage_errors():
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="on_error must be 'skip' or 'raise'"):
        UnreadableSamples(["a"], "samples", _Warned, on_error="ignore")
    with pytest.raises(UsageError, match=r"max_error_fraction must be in \[0, 1\]"):
        UnreadableSamples(["a"], "samples", _Warned, max_error_fraction=2.0)
    assert torch.equal(
        UnreadableSamples(["a"], "samples", _Warned).state(), torch.zeros(1, dtype=torch.uint8)
    )
