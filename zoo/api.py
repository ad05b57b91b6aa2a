"""The public face of zoo: list, create and load models by name, read their cards and transforms."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo import registry
from zoo.catalog import CatalogEntry, catalog, get_entry

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


def pretrained_arch_args(arch: str, pretrained: str) -> dict[str, Any]:
    """Architecture arguments a checkpoint was made with (catalog entry or published folder); checks ``arch``."""
    path = Path(pretrained)
    if path.is_file():
        return {}
    if path.is_dir():
        config = json.loads((path / "config.json").read_text())
        source_arch, args = config["arch"], config.get("arch_args") or {}
    else:
        entry = get_entry(pretrained)
        source_arch, args = entry.arch, entry.arch_args
    if source_arch != arch:
        raise ValueError(f"checkpoint '{pretrained}' is for architecture '{source_arch}', not '{arch}'")
    return dict(args)


def load_pretrained(
    model: nn.Module, pretrained: str, revision: str | None = None, cache_dir: str | Path | None = None
) -> None:
    """Load a catalog entry, published folder or weights file into ``model`` (see :func:`load_weights`)."""
    state, _ = _state_for(pretrained, revision=revision, cache_dir=cache_dir)
    load_weights(model, state, pretrained)


def create_model(arch: str, pretrained: str | None = None, **overrides: Any) -> nn.Module:
    """Build architecture ``arch``; ``pretrained`` names a catalog entry (or a weights file/folder).

    The checkpoint's own architecture arguments apply first, then ``overrides``. A ``num_classes``
    different from the checkpoint's re-initialises the classifier only.
    """
    if pretrained is None:
        return registry.build(arch, **overrides)
    model = registry.build(arch, **{**pretrained_arch_args(arch, pretrained), **overrides})
    load_pretrained(model, pretrained)
    return model


def _state_for(name_or_path: str, revision: str | None = None, cache_dir: str | Path | None = None):
    """(state_dict, entry or folder config) for a catalog name, a weights folder or a file."""
    from zoo import hub
    from zoo.serialization import load_state_dict

    path = Path(name_or_path)
    if path.is_dir():
        config, state = hub.load_folder(path)
        return state, config
    if path.is_file():
        return load_state_dict(path), None
    entry = get_entry(name_or_path)
    weights = hub.resolve(entry, revision=revision, cache_dir=cache_dir)
    return load_state_dict(weights), entry


def load(
    name: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """A catalog checkpoint (or a published folder) as a model in eval mode, weights verified.

    The model's catalog card is attached as ``model.card``.
    """
    from zoo.model_card import Card

    state, meta = _state_for(name, revision=revision, cache_dir=cache_dir)
    if isinstance(meta, CatalogEntry):
        entry = meta
    elif isinstance(meta, dict):  # a published folder: its config.json carries the entry
        from zoo.catalog import parse_entry

        entry = parse_entry(meta.get("name", Path(name).name), meta["entry"], Path(name) / "config.json")
    else:
        raise ValueError(
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
