"""The public face of zoo: list, create and load models by name, read their cards and transforms."""

from __future__ import annotations

import fnmatch
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo import registry
from zoo.catalog import AudioPreprocess, CatalogEntry, CatalogError, TextPreprocess, Tower, catalog, get_entry
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


def load_weights(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    classifier_keys: tuple[str, ...] | None = None,
) -> None:
    """Load ``state`` strictly; only the classifier keys may be missing/mismatched.

    A checkpoint trained for another number of classes keeps the freshly initialised head of
    ``model``: its head keys are dropped here, by name, and nothing else is tolerated.

    Args:
        model: the model to load into.
        state: the weights, with the model's own key names.
        source: where they come from, for messages.
        classifier_keys: key prefixes of the classifier (None: the model's ``classifier_keys``).
    """
    own = model.state_dict()
    head = tuple(getattr(model, "classifier_keys", ())) if classifier_keys is None else classifier_keys
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


def _chosen_tower(entry: CatalogEntry, tower: str | None, arch: str | None = None) -> Tower | None:
    """The tower of ``entry`` to use: the one named, else the only one built from ``arch``; None for an
    entry with a single architecture and no ``tower`` asked for."""
    if tower is not None:
        return entry.tower(tower)
    if not entry.towers:
        return None
    matches = [t for t in entry.towers.values() if arch is not None and t.arch == arch]
    if len(matches) == 1:
        return matches[0]
    raise UsageError(
        f"checkpoint '{entry.name}' holds several towers ({', '.join(entry.towers)}); choose one with tower=..."
    )


def choose_tower(pretrained: str, arch: str, tower: str | None = None) -> str | None:
    """The tower of ``pretrained`` that an ``arch`` model loads: ``tower`` if given, else the only tower
    built from ``arch``; None for a checkpoint with a single architecture.

    Args:
        pretrained: a catalog name, ``hf-hub:ORG/NAME`` or a path to a folder or weights file.
        arch: the architecture about to be built.
        tower: the modality asked for, if any.
    """
    entry = _checkpoint_entry(pretrained, None, None)
    chosen = None if entry is None else _chosen_tower(entry, tower, arch)
    return None if chosen is None or not entry.towers else chosen.modality


def pretrained_arch_args(arch: str, pretrained: str, tower: str | None = None) -> dict[str, Any]:
    """Architecture arguments a checkpoint (or one of its towers) was made with; checks ``arch``.

    Args:
        arch: the architecture about to be built.
        pretrained: a catalog name, ``hf-hub:ORG/NAME`` or a path to a folder or weights file.
        tower: the modality of the tower, for a checkpoint that holds several.
    """
    entry = _checkpoint_entry(pretrained, None, None)
    if entry is None:
        return {}
    chosen = _chosen_tower(entry, tower, arch)
    expected, args = (chosen.arch, chosen.arch_args) if chosen else (entry.arch, entry.arch_args)
    if expected != arch:
        what = f"checkpoint '{pretrained}'" + (
            f" ({chosen.modality} tower)" if chosen and entry.towers else ""
        )
        raise UsageError(f"{what} is for architecture '{expected}', not '{arch}'")
    return dict(args)


def tower_states(
    entry: CatalogEntry, state: dict[str, torch.Tensor], source: str
) -> dict[str, dict[str, torch.Tensor]]:
    """Each tower's weights of a multi-tower checkpoint, its key prefix removed.

    Keys matched by the entry's ``ignore_keys`` patterns are dropped first; any other key that no
    tower's prefix claims is an error that names it.

    Args:
        entry: a catalog entry with ``towers``.
        state: the whole weights file.
        source: where it comes from, for messages.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {modality: {} for modality in entry.towers}
    unclaimed = []
    for key, value in state.items():
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in entry.ignore_keys):
            continue
        owner = next((t for t in entry.towers.values() if key.startswith(t.prefix)), None)
        if owner is None:
            unclaimed.append(key)
        else:
            parts[owner.modality][key[len(owner.prefix) :]] = value
    if unclaimed:
        prefixes = ", ".join(f"{m}: {t.prefix!r}" for m, t in entry.towers.items())
        raise RuntimeError(
            f"weights from {source}: {len(unclaimed)} key(s) belong to no tower ({prefixes}) and match no "
            f"ignore_keys pattern: {unclaimed[:8]}{' ...' if len(unclaimed) > 8 else ''}"
        )
    return parts


def _load_tower_weights(model: nn.Module, tower: Tower, state: dict[str, torch.Tensor]) -> None:
    """Load one tower's weights (its prefix already removed) strictly, naming the tower in errors."""
    keys = f", keys under {tower.prefix!r}" if tower.prefix else ""
    source = f"{tower.entry} ({tower.modality} tower{keys})"
    load_weights(model, state, source, classifier_keys=tower.classifier_keys)


def load_pretrained(
    model: nn.Module,
    pretrained: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    tower: str | None = None,
    allow_nonfinite: bool = False,
) -> None:
    """Load a catalog entry, published folder or weights file into ``model`` (see :func:`load_weights`).

    Args:
        model: the model to load into.
        pretrained: a catalog name, ``hf-hub:ORG/NAME``, or a path to a folder or weights file.
        revision: a Hub revision overriding the catalog's.
        cache_dir: one folder for the weight caches.
        tower: the modality of the tower to load, for a checkpoint that holds several.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
    """
    state, entry = _state_for(
        pretrained, revision=revision, cache_dir=cache_dir, allow_nonfinite=allow_nonfinite
    )
    chosen = None if entry is None else _chosen_tower(entry, tower)
    if chosen is not None and entry.towers:
        _load_tower_weights(model, chosen, tower_states(entry, state, pretrained)[chosen.modality])
    elif tower is not None and entry is None:
        raise UsageError(f"{pretrained}: a bare weights file has no towers; load it without tower=")
    else:
        load_weights(model, state, pretrained)


def create_model(
    arch: str,
    pretrained: str | None = None,
    *,
    tower: str | None = None,
    allow_nonfinite: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build architecture ``arch``; ``pretrained`` names a catalog entry, ``hf-hub:ORG/NAME`` or a path.

    The checkpoint's own architecture arguments apply first, then ``overrides``. A ``num_classes``
    different from the checkpoint's re-initialises the classifier only. From a checkpoint that holds
    several towers, ``tower`` picks the one to fine-tune (it may be left out when only one tower is
    an ``arch``).

    Args:
        arch: a registered architecture.
        pretrained: a catalog name, ``hf-hub:ORG/NAME[@REVISION]``, or a path to a folder or weights file.
        tower: the modality of the tower to load (``"video"``), for a checkpoint that holds several.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
        **overrides: architecture arguments.
    """
    if pretrained is None:
        if tower is not None:
            raise UsageError("tower= picks a tower of a pretrained checkpoint; give pretrained= too")
        return registry.build(arch, **overrides)
    entry = _checkpoint_entry(pretrained, None, None)
    if entry is not None and tower is None:
        chosen = _chosen_tower(entry, None, arch)
        tower = chosen.modality if chosen is not None else None
    model = registry.build(arch, **{**pretrained_arch_args(arch, pretrained, tower), **overrides})
    load_pretrained(model, pretrained, tower=tower, allow_nonfinite=allow_nonfinite)
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
    tower: str | None = None,
    allow_nonfinite: bool = False,
) -> nn.Module:
    """A catalog checkpoint, ``hf-hub:`` repository or published folder as a model in eval mode, verified.

    A checkpoint that holds several towers comes back as a :class:`~zoo.models.towers.Towers`
    (``model["video"]`` is the video backbone; ``model(video=..., audio=...)`` gives the embeddings),
    every tower loaded strictly from its keys; ``tower`` asks for one of them alone. The model's
    catalog card is attached as ``model.card``.

    Args:
        name: a catalog name, ``hf-hub:ORG/NAME[@REVISION]``, or a path to a published folder.
        revision: a Hub revision overriding the catalog's (or the ``@REVISION`` of ``hf-hub:``).
        cache_dir: one folder for the weight caches.
        map_location: the device the model is moved to.
        tower: the modality of the one tower to load (``"video"``, ``"audio"``, ``"text"``).
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
    """
    from zoo.model_card import Card
    from zoo.models.towers import Towers

    state, entry = _state_for(name, revision=revision, cache_dir=cache_dir, allow_nonfinite=allow_nonfinite)
    if entry is None:
        raise UsageError(
            f"{name}: a bare weights file has no architecture; use zoo.create_model(arch, pretrained=...)"
        )
    if entry.towers:
        parts = tower_states(entry, state, name)
        chosen = [entry.tower(tower)] if tower is not None else list(entry.towers.values())
        towers = {}
        for t in chosen:
            towers[t.modality] = registry.build(t.arch, **t.arch_args)
            _load_tower_weights(towers[t.modality], t, parts[t.modality])
        model = towers[tower] if tower is not None else Towers(towers)
    else:
        if tower is not None:
            entry.tower(tower)  # a single architecture is the tower of its preprocess modality
        model = registry.build(entry.arch, **entry.arch_args)
        load_weights(model, state, name)
    model.card = Card(entry)
    return model.to(map_location).eval()


def card(name: str) -> Card:
    """The catalog card of checkpoint ``name``: metrics (paper vs ours), source, license, citation."""
    from zoo.model_card import Card

    return Card(get_entry(name))


def transform_for(name: str, tower: str | None = None):
    """The preprocessing matching checkpoint ``name``, or one of its towers.

    Video (and image) towers get the decode + preprocess pipeline (:class:`zoo.data.preprocess.ClipPreprocessor`),
    audio towers a media file or waveform -> spectrogram callable (:class:`zoo.data.preprocess.AudioPreprocessor`),
    text towers their tokenizer (:func:`zoo.data.text.build_tokenizer`).

    Args:
        name: a catalog name.
        tower: the modality of the tower (required for a checkpoint that holds several).
    """
    return entry_transform(get_entry(name), tower)


def entry_transform(entry: CatalogEntry, tower: str | None = None):
    """:func:`transform_for` of a parsed catalog entry.

    Args:
        entry: a catalog entry.
        tower: the modality of the tower (required for an entry that holds several).
    """
    from zoo.data.preprocess import AudioPreprocessor, ClipPreprocessor
    from zoo.data.text import build_tokenizer

    chosen = _chosen_tower(entry, tower)
    if chosen is None:
        return ClipPreprocessor.from_entry(entry)
    prep = chosen.preprocess
    if isinstance(prep, TextPreprocess):
        spec = {"name": prep.tokenizer, "max_length": prep.max_length, "revision": prep.revision}
        return build_tokenizer({k: v for k, v in spec.items() if v is not None})
    if isinstance(prep, AudioPreprocess):
        try:
            return AudioPreprocessor.from_spec(prep.preset, prep.seconds, **prep.front_end)
        except (UsageError, TypeError) as exc:  # fields the catalog cannot check without the data layer
            raise CatalogError(
                f"entry '{entry.name}', field 'towers.{chosen.modality}.preprocess': {exc}"
            ) from None
    if chosen.modality != "video":
        raise UsageError(f"{chosen.name}: zoo has no {chosen.modality} preprocessing yet; its fields: {prep}")
    return ClipPreprocessor.from_entry(chosen)
