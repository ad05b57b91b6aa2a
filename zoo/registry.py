"""Architecture registry: ``@register_model`` on small factory functions (timm-style).

A factory is a function ``name(**kwargs) -> nn.Module``; its name is the architecture name. Every
module under :mod:`zoo.models` is imported the first time the registry is queried, so adding a
model file needs no edit elsewhere.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the catalog tools (`zoo card`) use suggest() without importing torch
    from torch import nn

ModelFactory = Callable[..., "nn.Module"]

_factories: dict[str, ModelFactory] = {}
_discovered = False


class UnknownNameError(KeyError):
    """A model or catalog name that does not exist; the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def register_model(fn: ModelFactory) -> ModelFactory:
    """Register ``fn`` under its own name. A second registration of the same name is an error."""
    name = fn.__name__
    if name in _factories and _factories[name] is not fn:
        raise ValueError(
            f"model '{name}' is registered twice ({_factories[name].__module__}, {fn.__module__})"
        )
    _factories[name] = fn
    return fn


def import_submodules(package: str) -> None:
    """Import every module of ``package`` recursively (registration happens at import)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)


def _discover() -> None:
    global _discovered
    if not _discovered:
        import_submodules("zoo.models")
        _discovered = True  # only once every model module imported


def suggest(name: str, candidates: list[str], kind: str) -> UnknownNameError:
    """An error for an unknown ``name`` that lists the closest ``candidates``."""
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} '{name}'.{hint} (`zoo models` lists them)")


def model_names() -> list[str]:
    _discover()
    return sorted(_factories)


def is_model(name: str) -> bool:
    _discover()
    return name in _factories


def get_factory(name: str) -> ModelFactory:
    _discover()
    if name not in _factories:
        raise suggest(name, list(_factories), "architecture")
    return _factories[name]


def build(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate architecture ``name`` with random weights."""
    return get_factory(name)(**kwargs)


def filter_names(names: list[str], pattern: str | list[str] | None) -> list[str]:
    """Names matching any fnmatch ``pattern`` (all names when ``pattern`` is None)."""
    if pattern is None:
        return sorted(names)
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def count_parameters(name: str, **kwargs: Any) -> int:
    """Parameters of architecture ``name`` built with ``kwargs``, counted on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        model = build(name, **kwargs)
    return sum(p.numel() for p in model.parameters())
