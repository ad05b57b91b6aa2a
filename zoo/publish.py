"""Publish a catalog checkpoint as a Hugging Face Hub repository: safetensors, config and model card.

The folder written here is what ``zoo.load(folder)`` reads back (``config.json`` carries the catalog
entry), and what ``zoo publish NAME --repo-id ORG/NAME`` uploads with ``HfApi.create_repo`` and
``HfApi.upload_folder``. ``dry_run=True`` writes the folder and lists the calls without making them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError
from torch import nn

from zoo import __version__
from zoo.catalog import CatalogEntry, HubSource, get_entry
from zoo.errors import UsageError
from zoo.hub import resolve, sha256_of
from zoo.hub.folder import CONFIG_FILE, WEIGHTS_FILE
from zoo.serialization import load_state_dict, save_state_dict

__all__ = ["ApiCall", "PublishPlan", "publish"]

# What a failed Hub call raises: HTTP status errors, the HTTP client's network errors (the bases of
# HfHubHTTPError), invalid repository ids (ValueError). Anything else is a bug and keeps its traceback.
HUB_ERRORS = (OSError, ValueError, *HfHubHTTPError.__bases__)
FILES = ("README.md", CONFIG_FILE, WEIGHTS_FILE)
# Licence identifiers the Hub's model-card metadata knows; anything else is published as "other".
_HUB_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-nd-4.0",
    "gpl-3.0",
    "lgpl-3.0",
    "agpl-3.0",
    "unknown",
}


@dataclass(frozen=True)
class ApiCall:
    """One ``HfApi`` method call and its keyword arguments."""

    method: str
    kwargs: dict[str, Any]

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"HfApi().{self.method}({args})"


@dataclass
class PublishPlan:
    """What :func:`publish` wrote (file -> sha256) and the Hub calls it made (or would make, in a dry run)."""

    name: str
    repo_id: str
    folder: Path
    files: dict[str, str]
    calls: list[ApiCall]
    dry_run: bool
    results: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would call" if self.dry_run else "called"
        lines = [f"{self.name} -> {self.repo_id}: wrote {self.folder}"]
        lines += [f"  {name}  sha256 {sha}" for name, sha in sorted(self.files.items())]
        lines += [f"{verb}:"] + [f"  {call}" for call in self.calls]
        return "\n".join(lines)


def _check_fits(entry: CatalogEntry, state: dict[str, torch.Tensor]) -> nn.Module | None:
    """Refuse weights that ``zoo.load`` of the published folder could not load into the architecture.

    Every tower of a multi-tower entry is checked against its own keys (none may be left unclaimed).
    Returns the architecture of a single-architecture entry, built without memory where it allows (to
    read its classifier keys); None for a multi-tower entry.
    """
    from zoo import registry
    from zoo.api import tower_states

    if entry.towers:
        parts = tower_states(entry, state, entry.name)
        for modality, tower in entry.towers.items():
            _compare(f"{entry.name} ({modality} tower)", tower.arch, tower.arch_args, parts[modality])
        return None
    try:
        with torch.device("meta"):
            model = registry.build(entry.arch, **entry.arch_args)
    except (RuntimeError, NotImplementedError):  # an architecture whose init needs real tensors
        model = registry.build(entry.arch, **entry.arch_args)
    _compare(entry.name, entry.arch, entry.arch_args, state, model.state_dict())
    return model


def _compare(
    what: str,
    arch: str,
    arch_args: dict[str, Any],
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor] | None = None,
) -> None:
    """Raise unless ``state`` has exactly the keys and shapes of ``arch(**arch_args)``."""
    from zoo import registry

    if expected is None:
        with torch.device("meta"):
            expected = registry.build(arch, **arch_args).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"weights for '{what}' do not fit {arch}({arch_args}): missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}, shape mismatch {mismatched[:8]}"
        )


def pipeline_tag(entry: CatalogEntry, model: nn.Module | None) -> str:
    """The Hub task of a checkpoint: ``<modality>-classification`` or ``feature-extraction``.

    A model with a classifier head (a parameter under its ``classifier_keys``, with outputs) is a
    classifier; one without is an encoder, and so are the towers of a multi-tower checkpoint.

    Args:
        entry: the catalog entry.
        model: its architecture (its ``classifier_keys`` name the head's parameters); None for towers.
    """
    if model is None:
        return "feature-extraction"
    head = tuple(getattr(model, "classifier_keys", ()))
    has_head = any(k.startswith(head) and v.numel() for k, v in model.state_dict().items()) if head else False
    modality = entry.preprocess.modality
    return (
        f"{modality}-classification"
        if has_head and modality in ("video", "image", "audio")
        else "feature-extraction"
    )


def card_data(entry: CatalogEntry, task: str) -> ModelCardData:
    """The card's metadata: licence, tags, datasets, task and a ``model-index`` of the figures measured here.

    Args:
        entry: the catalog entry.
        task: its pipeline tag (:func:`pipeline_tag`).
    """
    from zoo.methods import is_self_supervised

    license_id = entry.license.lower()
    known_license = license_id in _HUB_LICENSES
    modalities = list(entry.towers) or [entry.preprocess.modality]
    archs = [arch for arch, _ in entry.architectures]
    tags = list(dict.fromkeys(["zoo", "pytorch", "safetensors", *modalities, *archs]))
    if is_self_supervised(entry):
        tags.insert(4, "self-supervised")
    datasets = [m.dataset for m in (*entry.metrics.paper, *entry.metrics.measured) if m.dataset]
    results = [
        EvalResult(
            task_type=task,
            dataset_type=m.dataset,
            dataset_name=m.dataset,
            metric_type=m.name,
            metric_value=m.value,
        )
        for m in entry.metrics.measured
        if m.dataset
    ]
    return ModelCardData(
        model_name=entry.name,
        license=license_id if known_license else "other",
        license_name=None if known_license else entry.license,
        library_name="zoo",
        pipeline_tag=task,
        tags=tags,
        datasets=list(dict.fromkeys(datasets)) or None,
        eval_results=results or None,
    )


def model_card(entry: CatalogEntry, repo_id: str, task: str) -> str:
    """The README.md of the Hub repository: metadata, description, metrics, preprocessing, usage.

    Args:
        entry: the catalog entry.
        repo_id: the Hub repository it is published to.
        task: its pipeline tag (:func:`pipeline_tag`).
    """
    from zoo.model_card import Card

    card = Card(entry)
    lines = [f"# {entry.name}", ""]
    lines += [entry.notes.strip(), ""] if entry.notes.strip() else []
    if entry.towers:
        lines += ["Weights of several towers in one safetensors file, each under its key prefix:", ""]
        lines += [
            f"- {m}: `{t.arch}` ({json.dumps(t.arch_args)}), keys `{t.prefix}*`"
            for m, t in entry.towers.items()
        ]
    else:
        lines += [
            f"Weights for the `zoo` architecture `{entry.arch}` ({json.dumps(entry.arch_args)}), as safetensors."
        ]
    if entry.paper:
        title = f"[{entry.paper.title}]({entry.paper.url})" if entry.paper.url else entry.paper.title
        lines += ["", f"Paper: {title}."]
    lines += ["", "## Metrics", "", "| metric | dataset | paper | measured here |", "|---|---|---|---|"]
    lines += [f"| {m} | {d or '—'} | {p} | {o} |" for m, d, p, o in card.metric_rows()] or [
        "| — | — | — | — |"
    ]
    if card.commands():
        lines += ["", "Figures measured here were produced with:", ""]
        lines += [f"- {m.name} ({m.dataset or 'n/a'}): `{m.command}`" for m in card.commands()]
    lines += ["", "## Preprocessing", "", "| field | value |", "|---|---|"]
    if entry.towers:
        lines += [
            f"| {m}.{k} | {v} |"
            for m, t in entry.towers.items()
            for k, v in t.preprocess.to_dict().items()
            if v is not None
        ]
    else:
        lines += [f"| {k} | {v} |" for k, v in entry.preprocess.to_dict().items() if v is not None]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "import zoo",
        "from huggingface_hub import snapshot_download",
        "",
        f'model = zoo.load("{entry.name}")  # by catalog name',
        f'model = zoo.load(snapshot_download("{repo_id}"))  # or from this repository\'s files',
        f'preprocess = zoo.transform_for("{entry.name}")',
        "```",
        "",
        "## License",
        "",
        f"{entry.license}.",
    ]
    if entry.paper and entry.paper.bibtex:
        lines += ["", "## Citation", "", "```bibtex", entry.paper.bibtex.strip(), "```"]
    body = "\n".join(lines) + "\n"
    return str(ModelCard(f"---\n{card_data(entry, task).to_yaml()}\n---\n\n{body}"))


def _config(entry: CatalogEntry, repo_id: str, weights_sha256: str, keep_sources: bool) -> dict[str, Any]:
    """``config.json``: the catalog entry (its first source now this repository) and the weights' hash.

    The entry's other sources stay as provenance only when the published weights came from them.
    """
    hub = HubSource(repo_id=repo_id, filename=WEIGHTS_FILE, sha256=weights_sha256)
    others = tuple(s for s in entry.weights if s != hub) if keep_sources else ()
    published = dataclasses.replace(entry, weights=(hub, *others))
    return {
        "library_name": "zoo",
        "zoo_version": __version__,
        "name": entry.name,
        "arch": entry.arch,
        "arch_args": entry.arch_args,
        "preprocess": entry.preprocess.to_dict(),
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": weights_sha256,
        "entry": published.to_dict(),
    }


def _prepare_folder(out_dir: str | os.PathLike | None, name: str) -> Path:
    """The folder to write: new, or holding only files a previous publish wrote (no links)."""
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"zoo-publish-{name}-"))
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: is a file; --out names the folder to write the Hub repository into")
    folder.mkdir(parents=True, exist_ok=True)
    stray = sorted(p.name for p in folder.iterdir() if p.name not in FILES)
    if stray:  # upload_folder sends everything in the folder
        raise UsageError(
            f"{folder} holds files publish did not write ({', '.join(stray[:5])}); use an empty folder"
        )
    for target in (folder / f for f in FILES):
        _check_inside(target, folder)
    return folder


def _check_inside(target: Path, folder: Path) -> None:
    """Refuse to write ``target`` through a link, or anywhere but inside ``folder``."""
    if target.is_symlink():
        raise UsageError(f"{target}: is a symbolic link; publish writes only plain files inside {folder}")
    if target.resolve().parent != folder.resolve():
        raise UsageError(f"{target}: resolves to {target.resolve()}, outside {folder}")


def publish(
    name: str | CatalogEntry,
    repo_id: str,
    out_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    token: str | None = None,
    model: nn.Module | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> PublishPlan:
    """Write the Hub folder of checkpoint ``name`` and upload it to ``repo_id`` (unless ``dry_run``).

    The weights are ``model``'s state dict when given (the entry's own sources are then left out of
    ``config.json``), else the entry's resolved (converted) weights; either way they must fit the
    entry's architecture. ``out_dir`` defaults to a new temporary folder.
    """
    entry = get_entry(name) if isinstance(name, str) else name
    if model is not None and entry.towers:  # a Towers module: each tower's keys under its prefix
        state = {
            entry.tower(modality).prefix + key: value.detach()
            for modality, tower in model.items()
            for key, value in tower.state_dict().items()
        }
    elif model is not None:
        state = {k: v.detach() for k, v in model.state_dict().items()}
    else:
        state = load_state_dict(resolve(entry, revision=revision, cache_dir=cache_dir, progress=progress))
    task = pipeline_tag(entry, _check_fits(entry, state))
    folder = _prepare_folder(out_dir, entry.name)

    weights = save_state_dict(
        state, folder / WEIGHTS_FILE, metadata={"format": "pt", "zoo_entry": entry.name}
    )
    weights_sha = sha256_of(weights)
    config = json.dumps(_config(entry, repo_id, weights_sha, keep_sources=model is None), indent=2) + "\n"
    _check_inside(folder / CONFIG_FILE, folder)
    (folder / CONFIG_FILE).write_text(config)
    _check_inside(folder / "README.md", folder)
    (folder / "README.md").write_text(model_card(entry, repo_id, task))
    files = {f: sha256_of(folder / f) for f in FILES}

    calls = [
        ApiCall("create_repo", {"repo_id": repo_id, "repo_type": "model", "exist_ok": True}),
        ApiCall(
            "upload_folder",
            {
                "repo_id": repo_id,
                "repo_type": "model",
                "folder_path": str(folder),
                "commit_message": f"Publish {entry.name} (zoo {__version__})",
            },
        ),
    ]
    plan = PublishPlan(entry.name, repo_id, folder, files, calls, dry_run)
    if not dry_run:
        api = HfApi(token=token)
        for call in calls:
            try:
                plan.results.append(getattr(api, call.method)(**call.kwargs))
            except HUB_ERRORS as exc:
                reason = (str(exc).strip().splitlines() or [""])[0]
                raise UsageError(
                    f"Hub repository '{repo_id}': {call.method} failed ({type(exc).__name__}: {reason}); "
                    f"the files are in {folder}"
                ) from exc
    return plan
