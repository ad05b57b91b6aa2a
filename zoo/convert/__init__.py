"""Converters from the authors' original checkpoint formats into ``zoo`` state dicts.

One module per format; each registers ``convert(raw) -> state_dict`` with :func:`register_converter`.
Modules here are imported on first use, so a new format needs no edit elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Converter = Callable[[dict], dict[str, torch.Tensor]]

_converters: dict[str, Converter] = {}
_discovered = False


def register_converter(fmt: str) -> Callable[[Converter], Converter]:
    """Register a converter for the checkpoint format named ``fmt`` (as used in checkpoints.yaml)."""

    def wrap(fn: Converter) -> Converter:
        if fmt in _converters and _converters[fmt] is not fn:
            raise ValueError(f"converter '{fmt}' is registered twice")
        _converters[fmt] = fn
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
