"""Errors that mean the user asked for something its inputs do not have (the CLI prints them as one line)."""

from __future__ import annotations

import os


class UsageError(ValueError):
    """A command or call asked for something its inputs do not have."""


class WeightsFileError(UsageError):
    """A weights file cannot be read as its format (empty, truncated, not that format); names the file."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path, self.detail = str(path), message
        super().__init__(f"{self.path}: {message}")


class NonFiniteWeightsError(WeightsFileError):
    """A weights file holds NaN or Inf values; names the file and the tensors."""

    def __init__(self, path: str | os.PathLike, tensors: list[str]):
        self.tensors = tensors
        shown = ", ".join(tensors[:8]) + (" ..." if len(tensors) > 8 else "")
        super().__init__(
            path,
            f"{len(tensors)} tensor(s) hold NaN or Inf values ({shown}); refusing to load them. "
            "Pass allow_nonfinite=True to load them anyway.",
        )


class WeightsDtypeWarning(UserWarning):
    """Checkpoint tensors were cast to the model's dtype on loading."""
