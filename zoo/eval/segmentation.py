"""Temporal action segmentation: MoF, segmental F1@{10,25,50} and edit score, with Hungarian matching.

Supervised segmentation (MS-TCN, Farha & Gall, CVPR 2019, and its ``eval.py``): frame accuracy (MoF)
over all frames, the edit score (normalised Levenshtein distance between the sequences of segment
labels, ×100, averaged over videos) and F1@τ: predicted segments, in temporal order, take the
ground-truth segment of the same label with the largest IoU; it is a true positive when that IoU is at
least τ and the ground-truth segment is not taken yet, a false positive otherwise; unmatched
ground-truth segments are false negatives. Counts are summed over all videos before precision, recall
and F1. Segments are half-open frame ranges ``[start, end)`` (MS-TCN's code ends the last segment of a
video one frame early; here every segment keeps its true length).

Unsupervised segmentation (CTE, Kukleva et al. CVPR 2019; TOT, Kumar et al. CVPR 2022) predicts
cluster ids, not classes: a one-to-one Hungarian matching of clusters to classes that maximises the
number of agreeing frames comes first, either per video or over the whole dataset (CTE/TOT: over all
videos of one activity; pass the activity of each video as ``groups``). Clusters left without a class
(more clusters than classes) count as wrong everywhere.

Background: labels listed in ``background`` (e.g. the ids of 50 Salads' ``action_start`` and
``action_end`` in MS-TCN, the ``-1`` of YouTube Instructions in CTE/TOT) are dropped from the segment
sequences of F1 and edit; ``MoF_fg`` is the accuracy over the frames whose ground truth is not
background (the MoF that CTE/TOT report on YouTube Instructions); ``MoF`` always counts every frame.
With matching, a predicted background label means "predicted background": it is not matched and stays
background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from zoo.errors import UsageError

__all__ = [
    "apply_mapping",
    "edit_score",
    "label_segments",
    "match_clusters",
    "segment_f1_counts",
    "segmentation_metrics",
]

Labels = torch.Tensor | np.ndarray | Sequence[int]


def _as_labels(labels: Labels, name: str) -> np.ndarray:
    array = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise UsageError(
            f"{name} must be a 1-D sequence of integer frame labels, got {array.dtype} {array.shape}"
        )
    return array.astype(np.int64)


def label_segments(labels: Labels, background: Sequence[int] = ()) -> list[tuple[int, int, int]]:
    """Runs of equal labels as ``(label, start, end)`` with ``end`` exclusive; background runs dropped.

    Args:
        labels: (T,) frame labels of one video.
        background: labels whose runs are left out.
    """
    labels = _as_labels(labels, "labels")
    if labels.size == 0:
        return []
    starts = np.flatnonzero(np.diff(labels, prepend=labels[0] - 1))  # frames where a new run begins
    ends = np.append(starts[1:], labels.size)
    return [
        (int(labels[start]), int(start), int(end))
        for start, end in zip(starts, ends)
        if labels[start] not in background
    ]


def _levenshtein(first: Sequence[int], second: Sequence[int]) -> int:
    previous = list(range(len(second) + 1))  # distances from an empty prefix of ``first``
    for i, a in enumerate(first, start=1):
        current = [i]
        for j, b in enumerate(second, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def edit_score(prediction: Labels, target: Labels, background: Sequence[int] = ()) -> float:
    """Edit score of one video: ``(1 - Levenshtein / max length) × 100`` on segment label sequences.

    Two empty sequences (a video all background) score 100.

    Args:
        prediction: (T,) predicted frame labels.
        target: (T,) ground-truth frame labels.
        background: labels whose segments are left out.
    """
    predicted = [label for label, _, _ in label_segments(prediction, background)]
    true = [label for label, _, _ in label_segments(target, background)]
    longest = max(len(predicted), len(true))
    return 100.0 if longest == 0 else 100 * (1 - _levenshtein(predicted, true) / longest)


def segment_f1_counts(
    prediction: Labels, target: Labels, overlap: float, background: Sequence[int] = ()
) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one video's segments at IoU ``overlap``.

    Args:
        prediction: (T,) predicted frame labels.
        target: (T,) ground-truth frame labels.
        overlap: the IoU threshold τ, e.g. 0.5 for F1@50.
        background: labels whose segments are left out.
    """
    true_segments = label_segments(target, background)
    true_labels = np.array([label for label, _, _ in true_segments])
    true_starts = np.array([start for _, start, _ in true_segments])
    true_ends = np.array([end for _, _, end in true_segments])
    taken = np.zeros(len(true_segments), dtype=bool)
    true_positives = false_positives = 0
    for label, start, end in label_segments(prediction, background):
        intersection = np.minimum(end, true_ends) - np.maximum(start, true_starts)
        union = np.maximum(end, true_ends) - np.minimum(start, true_starts)
        iou = intersection / union * (true_labels == label)  # (S_true,)
        best = int(iou.argmax()) if iou.size else -1
        if best >= 0 and iou[best] >= overlap and not taken[best]:
            true_positives += 1
            taken[best] = True
        else:
            false_positives += 1
    return true_positives, false_positives, int((~taken).sum())


def match_clusters(
    predictions: Sequence[Labels], targets: Sequence[Labels], background: Sequence[int] = ()
) -> dict[int, int]:
    """One-to-one cluster → class mapping that maximises agreeing frames (Hungarian), pooled over videos.

    Background labels are not matched: they map to themselves. Clusters left over (more clusters than
    classes) map to fresh labels that no ground truth holds, one each.

    Args:
        predictions: per video, (T_i,) predicted cluster ids.
        targets: per video, (T_i,) ground-truth class labels.
        background: labels that mean background, in both predictions and targets.
    """
    predicted = np.concatenate([_as_labels(p, "prediction") for p in predictions] or [np.zeros(0, np.int64)])
    true = np.concatenate([_as_labels(t, "target") for t in targets] or [np.zeros(0, np.int64)])
    is_background = np.isin(predicted, background)
    clusters, cluster_index = np.unique(predicted[~is_background], return_inverse=True)
    classes = np.unique(true[~np.isin(true, background)])
    counted = ~is_background & np.isin(true, classes)  # frames that vote: foreground on both sides
    votes = np.zeros((len(classes), len(clusters)))  # (classes, clusters): frames in agreement
    np.add.at(votes, (np.searchsorted(classes, true[counted]), cluster_index[counted[~is_background]]), 1)
    class_rows, cluster_cols = linear_sum_assignment(votes, maximize=True)
    mapping = {int(clusters[c]): int(classes[r]) for r, c in zip(class_rows, cluster_cols)}
    fresh = int(max(true.max(initial=0), max(background, default=0))) + 1
    for cluster in clusters:
        if int(cluster) not in mapping:
            mapping[int(cluster)] = fresh
            fresh += 1
    return mapping | {int(label): int(label) for label in background}


def apply_mapping(labels: Labels, mapping: dict[int, int]) -> np.ndarray:
    """Frame labels relabelled through ``mapping`` (labels it does not name are kept).

    Args:
        labels: (T,) frame labels.
        mapping: old label → new label.
    """
    labels = _as_labels(labels, "labels")
    unique, inverse = np.unique(labels, return_inverse=True)
    return np.array([mapping.get(int(u), int(u)) for u in unique], dtype=np.int64)[inverse].reshape(-1)


def segmentation_metrics(
    predictions: Sequence[Labels],
    targets: Sequence[Labels],
    matching: Literal["none", "video", "dataset"] = "none",
    groups: Sequence[str | int] | None = None,
    background: Sequence[int] = (),
    overlaps: Sequence[float] = (0.1, 0.25, 0.5),
) -> dict[str, float]:
    """``MoF``, ``F1@10``, ``F1@25``, ``F1@50`` and ``Edit`` in percent (plus ``MoF_fg`` with background).

    Args:
        predictions: per video, (T_i,) predicted frame labels (class ids, or cluster ids with matching).
        targets: per video, (T_i,) ground-truth class labels.
        matching: ``"none"`` when predictions are classes; ``"video"`` for a Hungarian matching per
            video; ``"dataset"`` for one matching over all videos (one per group with ``groups``).
        groups: per video, the group it is matched within (e.g. its activity); only with
            ``matching="dataset"``.
        background: ground-truth labels that mean background (see the module docstring).
        overlaps: IoU thresholds of the F1 scores.
    """
    if len(predictions) != len(targets) or not len(targets):
        raise UsageError(f"{len(predictions)} predicted videos for {len(targets)} target videos")
    if not all(0 < overlap <= 1 for overlap in overlaps):
        raise UsageError(f"overlaps must lie in (0, 1], got {list(overlaps)}")
    predicted = [_as_labels(p, f"predictions[{i}]") for i, p in enumerate(predictions)]
    true = [_as_labels(t, f"targets[{i}]") for i, t in enumerate(targets)]
    for i, (p, t) in enumerate(zip(predicted, true)):
        if len(p) != len(t):
            raise UsageError(f"video {i}: {len(p)} predicted frames for {len(t)} ground-truth frames")
    if groups is not None and matching != "dataset":
        raise UsageError(f"groups only apply to matching='dataset', not matching={matching!r}")
    if groups is not None and len(groups) != len(true):
        raise UsageError(f"groups has {len(groups)} entries for {len(true)} videos")
    if matching == "video":
        predicted = [apply_mapping(p, match_clusters([p], [t], background)) for p, t in zip(predicted, true)]
    elif matching == "dataset":
        groups = [0] * len(true) if groups is None else list(groups)
        for group in set(groups):
            members = [i for i, g in enumerate(groups) if g == group]
            mapping = match_clusters([predicted[i] for i in members], [true[i] for i in members], background)
            for i in members:
                predicted[i] = apply_mapping(predicted[i], mapping)
    elif matching != "none":
        raise UsageError(f"matching must be 'none', 'video' or 'dataset', not {matching!r}")

    all_predicted, all_true = np.concatenate(predicted), np.concatenate(true)
    metrics = {"MoF": 100 * float((all_predicted == all_true).mean())}
    if len(background):
        foreground = ~np.isin(all_true, background)
        correct = (all_predicted == all_true)[foreground]
        metrics["MoF_fg"] = 100 * float(correct.mean()) if correct.size else float("nan")
    for overlap in overlaps:
        tp, fp, fn = np.sum(
            [segment_f1_counts(p, t, overlap, background) for p, t in zip(predicted, true)], 0
        )
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics[f"F1@{round(100 * overlap)}"] = 100 * float(f1)
    metrics["Edit"] = float(np.mean([edit_score(p, t, background) for p, t in zip(predicted, true)]))
    return metrics
