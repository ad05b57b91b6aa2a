"""Lightning checkpoints of zoo runs, read without Lightning: the encoders inside, the newest complete file.

:class:`~zoo.methods.base.SSLMethod` writes ``zoo_encoders`` (each encoder's registered arch and
arguments) into its checkpoints, so :func:`load_encoder` rebuilds a plain backbone from any method
checkpoint — for evaluation, fine-tuning or export — without the method's code. Lives below
``zoo.methods`` so that ``zoo.eval`` can read checkpoints without importing the methods.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from torch import nn

from zoo import registry
from zoo.serialization import safe_torch_load, strip_prefix

__all__ = ["CheckpointContentError", "find_resume_checkpoint", "load_encoder"]

log = logging.getLogger(__name__)


class CheckpointContentError(KeyError):
    """A checkpoint without what was asked of it (not a zoo method checkpoint, or no such encoder)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


REQUIRED_CHECKPOINT_KEYS = ("state_dict", "epoch", "global_step", "loops", "optimizer_states")


def _is_complete(path: Path) -> bool:
    """Every zip member passes its CRC and the training state is there."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("a member fails its CRC check")
        checkpoint = safe_torch_load(path)
    except Exception as exc:  # any unreadable file is skipped, whatever the reason
        log.warning("skipping unreadable checkpoint %s (%s: %s)", path, type(exc).__name__, exc)
        return False
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_CHECKPOINT_KEYS):
        log.warning("skipping incomplete checkpoint %s", path)
        return False
    return True


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """The newest (by modification time) ``*.ckpt`` under ``directory`` that loads completely.

    Lightning's ``ModelCheckpoint`` files are zip archives written in one transaction; this check
    also covers files cut short by a crash, a full disk or a copy: every archive member must pass
    its CRC and the training state (weights, optimiser, loops) must be there. ``None`` when no file
    qualifies (start from scratch).
    """
    files = sorted(Path(directory).glob("**/*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((path for path in files if _is_complete(path)), None)


def load_encoder(checkpoint_path: str | Path, modality: str | None = None) -> nn.Module:
    """The ``modality`` encoder (default: the probed one) of a method checkpoint, as a plain backbone.

    The returned module has no classifier (``num_classes=0``) and is in eval mode.
    """
    checkpoint = safe_torch_load(checkpoint_path)
    specs = checkpoint.get("zoo_encoders")
    if not specs:
        raise CheckpointContentError(
            f"{checkpoint_path} has no 'zoo_encoders' entry: not a zoo method checkpoint"
        )
    if modality is None:
        modality = next((m for m, s in specs.items() if s.get("probe")), next(iter(specs)))
    if modality not in specs:
        raise CheckpointContentError(f"{checkpoint_path}: no '{modality}' encoder; it has {sorted(specs)}")
    spec = specs[modality]
    encoder = registry.build(spec["arch"], **{"num_classes": 0, **spec["kwargs"]})
    state = strip_prefix(checkpoint["state_dict"], f"encoders.{modality}.")
    encoder.load_state_dict(state, strict=True)
    return encoder.eval()
