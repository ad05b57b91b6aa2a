"""Hugging Face Hub resolution through huggingface_hub (HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE, revisions)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from zoo import __version__
from zoo.catalog import CatalogEntry, HubSource
from zoo.errors import UsageError
from zoo.hub.cache import hub_cache_dir, zoo_cache_dir
from zoo.hub.errors import Unavailable
from zoo.hub.offline import offline_reason, unreachable
from zoo.hub.trust import verify_file

HF_HUB_PREFIX = "hf-hub:"


class _SilentTqdm(tqdm):
    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(__import__(module).HTTPError)
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _endpoint() -> str:
    if os.environ.get("HF_ENDPOINT"):  # read now, not when huggingface_hub was imported
        return os.environ["HF_ENDPOINT"].rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_file(
    repo_id: str, filename: str, revision: str, cache_dir: str | os.PathLike | None, progress: bool
) -> Path:
    """``hf_hub_download`` of one file into the Hub cache; :class:`Unavailable` says why it cannot be had."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    hub_dir, offline = hub_cache_dir(cache_dir), offline_reason()
    kwargs: dict[str, Any] = dict(
        repo_id=repo_id,
        filename=filename,
        revision=revision,
        cache_dir=str(hub_dir),
        local_files_only=offline is not None,
        library_name="zoo",
        library_version=__version__,
        endpoint=_endpoint(),
    )
    if not progress:
        kwargs["tqdm_class"] = _SilentTqdm
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_dir), revision=revision)
    if not offline and not isinstance(cached, str):
        # Without network huggingface_hub retries for ~20 s before failing; a quick connect says it sooner.
        why = unreachable(kwargs["endpoint"])
        if why:
            raise Unavailable(f"not in the Hugging Face cache {hub_dir} and {why}")
    try:
        return Path(hf_hub_download(**kwargs))
    except _hub_errors() as exc:
        if offline:
            raise Unavailable(
                f"not in the Hugging Face cache {hub_dir} and offline mode is on ({offline})"
            ) from None
        raise Unavailable(f"{_first_line(exc)} (cache {hub_dir})") from None


def from_hub(
    entry: CatalogEntry,
    source: HubSource,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> Path:
    """A catalog Hub source as a verified file in the Hub cache."""
    rev = revision or source.revision
    path = hub_file(source.repo_id, source.filename, rev, cache_dir, progress)
    depth = len(source.filename.split("/"))
    commit = path.parents[depth - 1].name  # .../snapshots/<commit>/<filename>
    # The catalog's sha256 is for the catalog's revision; another revision is checked like an unhashed file.
    expected = source.sha256 if rev == source.revision else None
    blob = path.resolve()
    verify_file(
        path,
        expected,
        key=f"hf://{source.repo_id}@{commit}/{source.filename}",
        entry=entry.name,
        zoo_dir=zoo_cache_dir(cache_dir),
        delete=(blob,) if blob != path else (),
    )
    return path


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """``hf-hub:ORG/NAME[@REVISION]`` -> (repo_id, revision)."""
    body = spec.removeprefix(HF_HUB_PREFIX)
    repo_id, _, revision = body.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise UsageError(f"{spec!r}: expected {HF_HUB_PREFIX}ORG/NAME or {HF_HUB_PREFIX}ORG/NAME@REVISION")
    return repo_id, revision or "main"


def hub_folder(
    spec: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """The local snapshot folder of a published repository named ``hf-hub:ORG/NAME[@REVISION]``.

    ``config.json`` is fetched first; the weights file it names is then fetched into the same snapshot.
    Nothing is verified here: :func:`zoo.hub.folder.load_folder` checks the folder like a local one.
    """
    from zoo.hub.errors import WeightsUnavailableError
    from zoo.hub.folder import CONFIG_FILE, WEIGHTS_FILE, read_folder_config

    repo_id, rev = parse_hub_spec(spec)
    rev = revision or rev
    try:
        config_path = hub_file(repo_id, CONFIG_FILE, rev, cache_dir, progress)
        folder = config_path.parent
        name = read_folder_config(folder).get("weights_file", WEIGHTS_FILE)
        if isinstance(name, str) and name and ".." not in Path(name).parts and not Path(name).is_absolute():
            hub_file(repo_id, name, rev, cache_dir, progress)
    except Unavailable as exc:
        raise WeightsUnavailableError(spec, f"{spec}@{rev}: {exc}", [(spec, str(exc))]) from None
    return folder
