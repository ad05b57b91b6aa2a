"""Evaluation protocols: linear probe, kNN, retrieval, clustering; callbacks; metric functions.

The metric functions (pure torch / numpy / scipy, no Lightning) are importable from here::

    from zoo.eval import text_video_retrieval, segmentation_metrics, reid_metrics

They load on first use, so the ``zoo`` command's parser (which reads ``zoo.eval.commands``) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "hamming_distances": "zoo.eval.hashing",
    "hashing_map": "zoo.eval.hashing",
    "multiple_choice_accuracy": "zoo.eval.multiple_choice",
    "reid_metrics": "zoo.eval.reid",
    "average_precision": "zoo.eval.retrieval",
    "clip_retrieval": "zoo.eval.retrieval",
    "ranks_to_metrics": "zoo.eval.retrieval",
    "text_video_retrieval": "zoo.eval.retrieval",
    "apply_mapping": "zoo.eval.segmentation",
    "edit_score": "zoo.eval.segmentation",
    "label_segments": "zoo.eval.segmentation",
    "match_clusters": "zoo.eval.segmentation",
    "segment_f1_counts": "zoo.eval.segmentation",
    "segmentation_metrics": "zoo.eval.segmentation",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.eval' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
