"""Offline switches and a quick reachability probe (so a dead network fails in seconds, not minutes)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

_TRUE = {"1", "true", "yes", "on"}
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def offline_reason() -> str | None:
    """The switch that turned the network off (``ZOO_OFFLINE``, ``HF_HUB_OFFLINE``, ...), or None."""
    for var in ("ZOO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    from huggingface_hub import constants

    return "HF_HUB_OFFLINE was set when huggingface_hub was imported" if constants.HF_HUB_OFFLINE else None


def is_offline() -> bool:
    """Whether network access is off (``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE``, read at each call)."""
    return offline_reason() is not None


def unreachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why ``endpoint`` cannot be reached (one TCP connect), or None; proxies are trusted to know better."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return f"{endpoint} cannot be reached ({exc})"
    return None
