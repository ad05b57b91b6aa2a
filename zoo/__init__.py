"""zoo: a PyTorch Lightning model zoo for self-supervised video and multimodal representation learning.

>>> import zoo
>>> zoo.list_models("motionformer*", pretrained=True)
>>> model = zoo.load("motionformer-tiny-synthmotion")

Heavy modules (torch, Lightning) load on first use, so ``import zoo`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["card", "create_model", "list_models", "load", "register_model", "transform_for"]

_LAZY = {
    "card": "zoo.api",
    "create_model": "zoo.api",
    "list_models": "zoo.api",
    "load": "zoo.api",
    "transform_for": "zoo.api",
    "register_model": "zoo.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
