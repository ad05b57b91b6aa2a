"""Converters from the authors' original checkpoint formats into ``zoo`` state dicts.

One module per format; each registers ``convert(raw) -> state_dict`` with :func:`register_converter`.
Modules here are imported on first use, so a new format needs no edit elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from zoo.errors import UsageError
from zoo.serialization import is_safetensors, load_raw, safe_torch_load

Converter = Callable[[dict], dict[str, torch.Tensor]]

_converters: dict[str, Converter] = {}
_extra_globals: dict[str, tuple] = {}  # format -> placeholders its pickles need (see safe_torch_load)
_discovered = False


def register_converter(fmt: str, extra_globals: tuple = ()) -> Callable[[Converter], Converter]:
    """Register a converter for the checkpoint format named ``fmt`` (as used in checkpoints.yaml).

    ``extra_globals`` are allowed when reading that format's pickles (inert placeholders for training
    objects a file carries, see :func:`zoo.serialization.safe_torch_load`).
    """

    def wrap(fn: Converter) -> Converter:
        if fmt in _converters and _converters[fmt] is not fn:
            raise ValueError(f"converter '{fmt}' is registered twice")
        _converters[fmt] = fn
        _extra_globals[fmt] = tuple(extra_globals)
        return fn

    return wrap


def converter_names() -> list[str]:
    global _discovered
    if not _discovered:
        from zoo.registry import import_submodules

        import_submodules("zoo.convert")
        _discovered = True
    return sorted(_converters)


def get_converter(fmt: str) -> Converter:
    if fmt not in converter_names():
        from zoo.registry import suggest

        raise suggest(fmt, list(_converters), "checkpoint format")
    return _converters[fmt]


class ConversionError(UsageError):
    """A file is not in the checkpoint format it was converted as; names the file and the format."""


def convert_file(fmt: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the original checkpoint at ``path`` and convert it with converter ``fmt``.

    A file the converter does not recognise is a :class:`ConversionError` naming the file and format.

    Args:
        fmt: a converter name (see :func:`converter_names`).
        path: the original checkpoint file.
    """
    converter = get_converter(fmt)
    extra = _extra_globals.get(fmt, ())
    raw = safe_torch_load(path, extra) if extra and not is_safetensors(path) else load_raw(path)
    try:
        return converter(raw)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError) as exc:
        top = sorted(map(str, raw))[:8] if isinstance(raw, dict) else type(raw).__name__
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(
            f"{path}: not a '{fmt}' checkpoint ({detail}; top level: {top}); check the format name "
            f"(known: {', '.join(converter_names())})"
        ) from None
