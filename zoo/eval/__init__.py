"""Evaluation protocols: linear probe, kNN, retrieval, clustering; callbacks; metric functions.

The metric functions (pure torch / numpy / scipy, no Lightning) are importable from here::

    from zoo.eval import text_video_retrieval, segmentation_metrics, reid_metrics
"""

from zoo.eval.hashing import hamming_distances, hashing_map
from zoo.eval.multiple_choice import multiple_choice_accuracy
from zoo.eval.reid import reid_metrics
from zoo.eval.retrieval import average_precision, clip_retrieval, ranks_to_metrics, text_video_retrieval
from zoo.eval.segmentation import (
    apply_mapping,
    edit_score,
    label_segments,
    match_clusters,
    segment_f1_counts,
    segmentation_metrics,
)

__all__ = [
    "apply_mapping",
    "average_precision",
    "clip_retrieval",
    "edit_score",
    "hamming_distances",
    "hashing_map",
    "label_segments",
    "match_clusters",
    "multiple_choice_accuracy",
    "ranks_to_metrics",
    "reid_metrics",
    "segment_f1_counts",
    "segmentation_metrics",
    "text_video_retrieval",
]
