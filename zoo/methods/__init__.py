"""LightningModules, one per method; base.py holds what they share.

The functions here list the methods (for the docs' methods table and for publishing) without
importing Lightning until they are called.
"""

from __future__ import annotations

from zoo.catalog import CatalogEntry
from zoo.registry import filter_names

__all__ = ["is_self_supervised", "method_classes", "trained_with"]


def method_classes() -> list[type]:
    """The training methods of ``zoo.methods``: every concrete LightningModule (``SSLMethod``s and the supervised ones).

    A method class names its paper (``paper``, a :class:`~zoo.catalog.Paper`) and the catalog entries it
    trained (``checkpoints``, an fnmatch pattern). Importing the methods imports Lightning.
    """
    import inspect

    from lightning.pytorch import LightningModule

    from zoo.registry import import_submodules

    import_submodules("zoo.methods")
    found, todo = [], [LightningModule]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if not inspect.isabstract(cls) and cls.__module__.startswith("zoo.") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__.lower())


def trained_with(entry: CatalogEntry) -> type | None:
    """The method class whose ``checkpoints`` pattern names ``entry``, or None when no method claims it.

    Args:
        entry: a catalog entry.
    """
    for cls in method_classes():
        pattern = getattr(cls, "checkpoints", None)
        if pattern and filter_names([entry.name], pattern):
            return cls
    return None


def is_self_supervised(entry: CatalogEntry) -> bool:
    """Whether a self-supervised method (an ``SSLMethod``) trained ``entry``'s weights.

    Args:
        entry: a catalog entry.
    """
    from zoo.methods.base import SSLMethod

    method = trained_with(entry)
    return method is not None and issubclass(method, SSLMethod)
