"""The public face of zoo: list, create and load models by name, read their cards and transforms."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo import registry
from zoo.catalog import CatalogEntry, catalog, get_entry
from zoo.errors import UsageError, WeightsDtypeWarning

if TYPE_CHECKING:
    from zoo.model_card import Card

log = logging.getLogger(__name__)


def list_models(pattern: str | list[str] | None = None, pretrained: bool = False) -> list[str]:
    """Architecture names, or with ``pretrained=True`` the catalog checkpoints that have a weight source.

    Args:
        pattern: fnmatch filter(s), e.g. ``"motionformer*"``; None lists all.
        pretrained: list catalog checkpoints whose weights can be obtained (``zoo models`` lists all).
    """
    names = [n for n, e in catalog().items() if e.weights] if pretrained else registry.model_names()
    return registry.filter_names(names, pattern)


def _classifier_keys(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(model, "classifier_keys", ()))


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly; only the model's listed classifier keys may be missing/mismatched.

    A checkpoint trained for another number of classes keeps the freshly initialised head of
    ``model``: its head keys are dropped here, by name, and nothing else is tolerated.
    """
    own = model.state_dict()
    head = _classifier_keys(model)
    is_head = lambda k: any(k.startswith(p) for p in head)  # noqa: E731
    dropped = [k for k, v in state.items() if is_head(k) and (k not in own or own[k].shape != v.shape)]
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape and k not in dropped]
    state = {k: v for k, v in state.items() if k not in dropped and k not in mismatched}
    has_head = any(is_head(k) for k in state)  # a bare backbone (e.g. exported from pre-training) has none
    cast = [k for k, v in state.items() if k in own and own[k].dtype != v.dtype]
    if cast:
        shown = ", ".join(f"{k} ({state[k].dtype} -> {own[k].dtype})" for k in cast[:8])
        warnings.warn(
            f"weights from {source}: {len(cast)} tensor(s) are cast to the model's dtype: {shown}"
            + (" ..." if len(cast) > 8 else ""),
            WeightsDtypeWarning,
            stacklevel=3,
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh_head = bool(dropped) or not has_head
    bad_missing = [k for k in missing if not (is_head(k) and fresh_head) and k not in mismatched]
    if bad_missing or unexpected or mismatched:
        parts = []
        if bad_missing:
            parts.append(f"missing keys {bad_missing[:8]}{' ...' if len(bad_missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if mismatched:
            parts.append(f"shape mismatch {mismatched[:8]}")
        raise RuntimeError(f"weights from {source} do not fit {type(model).__name__}: " + "; ".join(parts))
    if dropped or (head and not has_head):
        log.info("the classifier keeps its fresh initialisation (the checkpoint's does not fit or is absent)")


def is_path(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a path rather than a catalog entry.

    A path is explicit: it contains a path separator, or starts with ``.``, ``/`` or ``~``. A bare
    name is a catalog name, even if a file or folder of that name exists in the working directory.
    """
    text = os.fspath(spec)
    return isinstance(spec, os.PathLike) or text.startswith((".", "/", "~")) or "/" in text or os.sep in text


def _unknown_name_hint(name: str) -> str:
    if Path(name).exists():
        return f" ('{name}' is also a file or folder here; a path is written ./{name})"
    return ""


def _get_entry(name: str) -> CatalogEntry:
    """The catalog entry ``name``; an unknown name that is a local path says how to write it as one."""
    from zoo.registry import UnknownNameError

    try:
        return get_entry(name)
    except UnknownNameError as exc:
        hint = _unknown_name_hint(name)
        if not hint:
            raise
        raise type(exc)(f"{exc}{hint}") from None


def _locate(
    spec: str | os.PathLike, revision: str | None, cache_dir: str | Path | None
) -> Path | CatalogEntry:
    """A published folder or weights file (a path, or ``hf-hub:`` fetched into the cache), or a catalog entry."""
    from zoo import hub

    text = os.fspath(spec)
    if text.startswith(hub.HF_HUB_PREFIX):
        return hub.hub_folder(text, revision, cache_dir)
    if is_path(spec):
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such weights file or folder: {path}")
        return path
    return _get_entry(text)


def _checkpoint_entry(spec: str, revision: str | None, cache_dir: str | Path | None) -> CatalogEntry | None:
    """The entry behind a catalog name, published folder or ``hf-hub:`` repository; None for a file."""
    from zoo import hub

    found = _locate(spec, revision, cache_dir)
    if isinstance(found, CatalogEntry):
        return found
    return hub.folder_entry(found) if found.is_dir() else None


def pretrained_arch_args(arch: str, pretrained: str) -> dict[str, Any]:
    """Architecture arguments a checkpoint was made with (catalog entry or published folder); checks ``arch``."""
    entry = _checkpoint_entry(pretrained, None, None)
    if entry is None:
        return {}
    if entry.arch != arch:
        raise UsageError(f"checkpoint '{pretrained}' is for architecture '{entry.arch}', not '{arch}'")
    return dict(entry.arch_args)


def load_pretrained(
    model: nn.Module,
    pretrained: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    allow_nonfinite: bool = False,
) -> None:
    """Load a catalog entry, published folder or weights file into ``model`` (see :func:`load_weights`).

    Args:
        model: the model to load into.
        pretrained: a catalog name, ``hf-hub:ORG/NAME``, or a path to a folder or weights file.
        revision: a Hub revision overriding the catalog's.
        cache_dir: one folder for the weight caches.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
    """
    state, _ = _state_for(pretrained, revision=revision, cache_dir=cache_dir, allow_nonfinite=allow_nonfinite)
    load_weights(model, state, pretrained)


def create_model(
    arch: str, pretrained: str | None = None, *, allow_nonfinite: bool = False, **overrides: Any
) -> nn.Module:
    """Build architecture ``arch``; ``pretrained`` names a catalog entry, ``hf-hub:ORG/NAME`` or a path.

    The checkpoint's own architecture arguments apply first, then ``overrides``. A ``num_classes``
    different from the checkpoint's re-initialises the classifier only.

    Args:
        arch: a registered architecture.
        pretrained: a catalog name, ``hf-hub:ORG/NAME[@REVISION]``, or a path to a folder or weights file.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
        **overrides: architecture arguments.
    """
    if pretrained is None:
        return registry.build(arch, **overrides)
    model = registry.build(arch, **{**pretrained_arch_args(arch, pretrained), **overrides})
    load_pretrained(model, pretrained, allow_nonfinite=allow_nonfinite)
    return model


def _state_for(
    spec: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    allow_nonfinite: bool = False,
) -> tuple[dict[str, torch.Tensor], CatalogEntry | None]:
    """(state_dict, entry) for a catalog name, ``hf-hub:`` repository, published folder or file (entry None)."""
    from zoo import hub
    from zoo.serialization import load_state_dict

    found = _locate(spec, revision, cache_dir)
    if isinstance(found, CatalogEntry):
        weights = hub.resolve(found, revision=revision, cache_dir=cache_dir)
        return load_state_dict(weights, allow_nonfinite=allow_nonfinite), found
    if found.is_dir():
        config, state = hub.load_folder(found, allow_nonfinite=allow_nonfinite)
        return state, hub.folder_entry(found, config)
    return load_state_dict(found, allow_nonfinite=allow_nonfinite), None


def load(
    name: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    map_location: str | torch.device = "cpu",
    *,
    allow_nonfinite: bool = False,
) -> nn.Module:
    """A catalog checkpoint, ``hf-hub:`` repository or published folder as a model in eval mode, verified.

    The model's catalog card is attached as ``model.card``.

    Args:
        name: a catalog name, ``hf-hub:ORG/NAME[@REVISION]``, or a path to a published folder.
        revision: a Hub revision overriding the catalog's (or the ``@REVISION`` of ``hf-hub:``).
        cache_dir: one folder for the weight caches.
        map_location: the device the model is moved to.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
    """
    from zoo.model_card import Card

    state, entry = _state_for(name, revision=revision, cache_dir=cache_dir, allow_nonfinite=allow_nonfinite)
    if entry is None:
        raise UsageError(
            f"{name}: a bare weights file has no architecture; use zoo.create_model(arch, pretrained=...)"
        )
    model = registry.build(entry.arch, **entry.arch_args)
    load_weights(model, state, name)
    model.card = Card(entry)
    return model.to(map_location).eval()


def card(name: str) -> Card:
    """The catalog card of checkpoint ``name``: metrics (paper vs ours), source, license, citation."""
    from zoo.model_card import Card

    return Card(get_entry(name))


def transform_for(name: str):
    """The decode + preprocess pipeline matching checkpoint ``name`` (see :class:`zoo.data.ClipPreprocessor`)."""
    from zoo.data.preprocess import ClipPreprocessor

    return ClipPreprocessor.from_entry(get_entry(name))
