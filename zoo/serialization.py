"""Reading and writing weights: safetensors, and legacy pickles through an explicit allow-list.

Pickled checkpoints (``.pth``, ``.pyth``, ``.pt``, ``.ckpt``) are read with
``torch.load(weights_only=True)``: only tensors, containers and the globals listed in
:data:`ALLOWED_GLOBALS` can be built, so a file cannot run code when it is opened. Everything this
package writes is safetensors, written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import pickle
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

from zoo.errors import NonFiniteWeightsError, WeightsFileError

__all__ = [
    "ALLOWED_GLOBALS",
    "UnsafeCheckpointError",
    "check_finite",
    "check_readable",
    "is_safetensors",
    "load_raw",
    "load_state_dict",
    "read_metadata",
    "safe_torch_load",
    "save_state_dict",
    "strip_prefix",
    "unwrap_state_dict",
]

STATE_DICT_KEYS = ("state_dict", "model_state", "model", "module")
"""Keys under which training checkpoints keep the weights; tried in this order by :func:`unwrap_state_dict`."""
DATA_PARALLEL_PREFIX = "module."


def _numpy_globals() -> list[Callable | tuple[Callable, str]]:
    """numpy scalars, dtypes and arrays, under the names numpy 1.x and 2.x pickles use."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out: list[Callable | tuple[Callable, str]] = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(multiarray.scalar, f"{module}.scalar"), (multiarray._reconstruct, f"{module}._reconstruct")]
    # A pickled dtype is rebuilt by ``np.dtype(...)`` and then given its state: its class must be allowed.
    numeric = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
    numeric += ("Float16", "Float32", "Float64", "LongDouble", "Complex64", "Complex128")
    numeric += ("Byte", "UByte", "Short", "UShort", "Int", "UInt", "Long", "ULong", "LongLong", "ULongLong")
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, f"{n}DType") for n in numeric if hasattr(dtypes, f"{n}DType")]
    return out


ALLOWED_GLOBALS: tuple[Callable | tuple[Callable, str], ...] = (
    # SlowFast/Motionformer ``.pyth`` and SeLaVi/GDT ``.pth`` keep numpy scalars (epoch, accuracies) and arrays.
    *_numpy_globals(),
    # GDT / SeLaVi / XDC-style checkpoints store the training arguments.
    argparse.Namespace,
    # ... whose values are sometimes paths.
    pathlib.PosixPath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
)
"""Globals a legacy checkpoint may name, beyond torch's own weights-only set (tensors, OrderedDict, ...)."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A pickled checkpoint names a global outside the allow-list; it was not unpickled."""

    def __init__(self, path: str | os.PathLike, refused: str | None, detail: str):
        self.path, self.refused = str(path), refused
        what = f"the global '{refused}'" if refused else "a construct"
        super().__init__(
            f"refusing to unpickle {self.path}: it asks for {what} that a weights-only load does not allow "
            f"({detail}). Nothing from the file was executed. If the file is trusted and the global is plain "
            "data, pass it in `extra_globals=` to zoo.serialization.safe_torch_load; otherwise get the "
            "weights as .safetensors."
        )


_TORCH_MAGIC = (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # zip archive, pickle protocol 2-5
_REFUSED = re.compile(r"GLOBAL (\S+?)(?: was not| whose module)")


def _detail(message: str) -> str:
    """The unpickler's own reason, without torch's advice to turn ``weights_only`` off."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" Please use")[0].strip()
        if "GLOBAL" in line:
            return line
    useful = [
        line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation"))
    ]
    return useful[-1] if useful else "unpickling error"


def safe_torch_load(path: str | os.PathLike, extra_globals: list[Any] | tuple[Any, ...] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with :data:`ALLOWED_GLOBALS` (+ ``extra_globals``).

    A file that needs anything else raises :class:`UnsafeCheckpointError` naming the file and the global.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    # ``safe_globals`` removes what it added on exit: leave globals the caller allowed before untouched.
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic not in _TORCH_MAGIC:  # neither a zip archive nor a pickle: do not ask the unpickler
        raise WeightsFileError(
            path,
            f"not a PyTorch checkpoint or safetensors file ({path.stat().st_size} bytes, starts with {magic!r}); "
            "the file is empty, truncated or another format",
        )
    already = set(torch.serialization.get_safe_globals())
    allowed = [g for g in (*ALLOWED_GLOBALS, *extra_globals) if g not in already]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        match = _REFUSED.search(text)
        raise UnsafeCheckpointError(path, match.group(1) if match else None, _detail(text)) from None
    except (
        EOFError,
        RuntimeError,
        ValueError,
        OSError,
        struct.error,
    ) as exc:  # empty, truncated, not a pickle
        raise _unreadable(path, "PyTorch checkpoint", exc) from None


def _unreadable(path: Path, what: str, exc: BaseException) -> WeightsFileError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    size = path.stat().st_size if path.is_file() else 0
    return WeightsFileError(
        path,
        f"not a readable {what} ({size} bytes; {detail}); the file is empty, truncated or another format",
    )


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether the file is safetensors (by content: an 8-byte header length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 0 < header_len <= os.path.getsize(path) - 8


def load_raw(path: str | os.PathLike) -> Any:
    """The file's content as stored: a tensor dict for safetensors, whatever was pickled otherwise.

    This is what converters (``zoo.convert``) receive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    if is_safetensors(path):
        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except safetensors.SafetensorError as exc:
            raise _unreadable(path, "safetensors file", exc) from None
    return safe_torch_load(path)


def check_readable(path: str | os.PathLike) -> None:
    """Raise :class:`~zoo.errors.WeightsFileError` (naming ``path``) unless the file parses as weights.

    A safetensors file must have a valid header whose tensors cover the file exactly (a file cut short
    fails); anything else must unpickle under :func:`safe_torch_load`.
    """
    path = Path(path)
    if is_safetensors(path):
        read_metadata(path)
    else:
        safe_torch_load(path)


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def unwrap_state_dict(
    raw: Any, key: str | None = None, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint, without a DataParallel ``module.`` prefix.

    A training checkpoint that wraps its weights is unwrapped at ``key`` or, without ``key``, at the
    first of :data:`STATE_DICT_KEYS` that holds a tensor dict. A ``module.`` prefix carried by every
    key is removed; other key names are returned as stored.

    Args:
        raw: what the checkpoint file held (see :func:`load_raw`).
        key: the top-level key that holds the weights; found by :data:`STATE_DICT_KEYS` when omitted.
        source: the file or format named in errors.
    """
    if key is not None:
        if not isinstance(raw, Mapping) or key not in raw:
            keys = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
            raise KeyError(f"{source}: no '{key}' in the checkpoint (top level: {keys})")
        raw = raw[key]
    elif not _tensor_dict(raw) and isinstance(raw, Mapping):
        raw = next((raw[k] for k in STATE_DICT_KEYS if _tensor_dict(raw.get(k))), raw)
    if not _tensor_dict(raw):
        keys = sorted(map(str, raw))[:12] if isinstance(raw, Mapping) else type(raw).__name__
        raise WeightsFileError(
            source,
            f"not a dict of tensors (top level: {keys}); pass key= or convert it with its converter "
            "(`zoo convert FORMAT SOURCE OUTPUT`)",
        )
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in raw):
        return strip_prefix(raw, DATA_PARALLEL_PREFIX)
    return dict(raw)


def check_finite(state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Raise :class:`~zoo.errors.NonFiniteWeightsError` naming ``source`` and the tensors holding NaN/Inf."""
    bad = [
        name
        for name, tensor in state.items()
        if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all()
    ]
    if bad:
        raise NonFiniteWeightsError(source, bad)


def load_state_dict(
    path: str | os.PathLike, key: str | None = None, *, allow_nonfinite: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (safetensors, or a legacy pickle read by :func:`safe_torch_load`).

    Args:
        path: the weights file.
        key: the top-level key that holds the weights (see :func:`unwrap_state_dict`).
        allow_nonfinite: load tensors holding NaN or Inf instead of raising
            :class:`~zoo.errors.NonFiniteWeightsError`.
    """
    state = unwrap_state_dict(load_raw(path), key, source=str(path))
    if not allow_nonfinite:
        check_finite(state, path)
    return state


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors header (a malformed file names itself)."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except safetensors.SafetensorError as exc:
        raise _unreadable(Path(path), "safetensors file", exc) from None


def _storable(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors safetensors can write: on CPU, contiguous, no two sharing memory (tied weights are copied)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, torch.device]] = set()
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"'{name}' is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        storage = (tensor.untyped_storage().data_ptr(), tensor.device)
        if storage in seen or not tensor.is_contiguous():
            tensor = tensor.contiguous().clone()
        elif tensor.numel():
            seen.add(storage)
        out[name] = tensor
    return out


def save_state_dict(
    state: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``state`` as safetensors at ``path``, atomically; non-string metadata values become JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    tensors = _storable(state)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        safetensors.torch.save_file(tensors, str(tmp), metadata=meta)
        tmp.chmod(0o644)  # safetensors creates its file private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
