"""Published folders: ``config.json`` + ``model.safetensors``, as ``zoo publish`` writes them.

The one reader of such folders, whether local, a Hub snapshot or fetched with ``hf-hub:ORG/NAME``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from zoo.catalog import CatalogEntry, parse_entry
from zoo.errors import UsageError
from zoo.hub.trust import folder_weights
from zoo.serialization import load_state_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def read_folder_config(path: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a published folder, checked to be a JSON object with an ``arch`` (or, for
    a multi-tower checkpoint, an ``entry`` with ``towers``)."""
    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {CONFIG_FILE} (a zoo weights folder holds {CONFIG_FILE} and {WEIGHTS_FILE}, as "
            "written by `zoo publish`)"
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{config_path}: not valid JSON ({exc})") from None
    towers = (
        isinstance(config, dict) and isinstance(config.get("entry"), dict) and "towers" in config["entry"]
    )
    if not isinstance(config, dict) or not (isinstance(config.get("arch"), str) or towers):
        raise UsageError(
            f"{config_path}: expected a JSON object with an 'arch' or an entry with 'towers' "
            "(as written by `zoo publish`)"
        )
    return config


def folder_entry(path: str | os.PathLike, config: dict[str, Any] | None = None) -> CatalogEntry:
    """The catalog entry a published folder carries (its ``config.json`` ``entry``)."""
    folder = Path(path)
    config = read_folder_config(folder) if config is None else config
    raw = config.get("entry") or {"arch": config["arch"], "arch_args": config.get("arch_args") or {}}
    return parse_entry(config.get("name", folder.name), raw, folder / CONFIG_FILE)


def load_folder(
    path: str | os.PathLike, *, allow_nonfinite: bool = False
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state_dict) of a published folder; the weights are checked against ``weights_sha256``.

    Args:
        path: the folder.
        allow_nonfinite: load tensors holding NaN or Inf instead of refusing them.
    """
    folder = Path(path)
    config = read_folder_config(folder)
    weights = folder_weights(folder, config, folder / CONFIG_FILE)
    return config, load_state_dict(weights, allow_nonfinite=allow_nonfinite)
