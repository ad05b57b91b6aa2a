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
import yaml
from huggingface_hub import HfApi
from torch import nn

from zoo import __version__
from zoo.catalog import CatalogEntry, HubSource, get_entry
from zoo.hub import resolve, sha256_of
from zoo.hub.folder import CONFIG_FILE, WEIGHTS_FILE
from zoo.serialization import load_state_dict, save_state_dict

__all__ = ["ApiCall", "PublishPlan", "publish"]

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


def _check_fits(entry: CatalogEntry, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights that ``zoo.load`` of the published folder could not load into the architecture."""
    from zoo import registry

    try:
        with torch.device("meta"):
            expected = registry.build(entry.arch, **entry.arch_args).state_dict()
    except (RuntimeError, NotImplementedError):  # an architecture whose init needs real tensors
        expected = registry.build(entry.arch, **entry.arch_args).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"weights for '{entry.name}' do not fit {entry.arch}({entry.arch_args}): missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}, shape mismatch {mismatched[:8]}"
        )


def _front_matter(entry: CatalogEntry) -> str:
    license_id = entry.license.lower()
    meta: dict[str, Any] = {"license": license_id if license_id in _HUB_LICENSES else "other"}
    if meta["license"] == "other":
        meta["license_name"] = entry.license
    meta["library_name"] = "zoo"
    meta["tags"] = ["zoo", "pytorch", "safetensors", entry.preprocess.modality, "self-supervised", entry.arch]
    datasets = [m.dataset for m in (*entry.metrics.paper, *entry.metrics.measured) if m.dataset]
    if datasets:
        meta["datasets"] = list(dict.fromkeys(datasets))
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def model_card(entry: CatalogEntry, repo_id: str) -> str:
    """The README.md of the Hub repository: front matter, description, metrics, preprocessing, usage."""
    from zoo.model_card import Card

    card = Card(entry)
    lines = [_front_matter(entry), f"# {entry.name}", ""]
    lines += [entry.notes.strip(), ""] if entry.notes.strip() else []
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
    return "\n".join(lines) + "\n"


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
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"zoo-publish-{name}-"))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stray = sorted(p.name for p in folder.iterdir() if p.name not in FILES)
    if stray:  # upload_folder sends everything in the folder
        raise FileExistsError(
            f"{folder} holds files publish did not write ({', '.join(stray[:5])}); use an empty folder"
        )
    return folder


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
    if model is not None:
        state = {k: v.detach() for k, v in model.state_dict().items()}
    else:
        state = load_state_dict(resolve(entry, revision=revision, cache_dir=cache_dir, progress=progress))
    _check_fits(entry, state)
    folder = _prepare_folder(out_dir, entry.name)

    weights = save_state_dict(
        state, folder / WEIGHTS_FILE, metadata={"format": "pt", "zoo_entry": entry.name}
    )
    weights_sha = sha256_of(weights)
    config = json.dumps(_config(entry, repo_id, weights_sha, keep_sources=model is None), indent=2) + "\n"
    (folder / CONFIG_FILE).write_text(config)
    (folder / "README.md").write_text(model_card(entry, repo_id))
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
        plan.results = [getattr(api, call.method)(**call.kwargs) for call in calls]
    return plan
