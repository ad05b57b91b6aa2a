"""Segmentation metrics by hand and against independent loop implementations (brute-force matching)."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest
import torch

from zoo.errors import UsageError
from zoo.eval.segmentation import (
    edit_score,
    label_segments,
    match_clusters,
    segment_f1_counts,
    segmentation_metrics,
)

A, B = 0, 1


def test_label_segments_by_hand():
    labels = [3, 3, -1, -1, 4, 3, 3, 3]
    assert label_segments(labels) == [(3, 0, 2), (-1, 2, 4), (4, 4, 5), (3, 5, 8)]
    assert label_segments(torch.tensor(labels), background=(-1,)) == [(3, 0, 2), (4, 4, 5), (3, 5, 8)]
    assert label_segments([]) == []


def test_f1_counts_by_hand():
    target = [A, A, A, A, B, B, B, B, B, B]  # A [0,4), B [4,10)
    prediction = [A, A, B, B, B, B, A, B, B, B]  # A [0,2), B [2,6), A [6,7), B [7,10)
    # IoUs with the same-label ground truth: A[0,2) 2/4, B[2,6) 2/8, A[6,7) none, B[7,10) 3/6
    # τ=0.1: A[0,2) and B[2,6) match; B[7,10) finds B taken -> false positive
    assert segment_f1_counts(prediction, target, 0.1) == (2, 2, 0)
    # τ=0.5: B[2,6) falls short, so B[7,10) takes B
    assert segment_f1_counts(prediction, target, 0.5) == (2, 2, 0)
    assert segment_f1_counts(prediction, target, 0.6) == (0, 4, 2)
    # edit: [A, B, A, B] against [A, B] -> 2 deletions of 4 -> 50
    assert edit_score(prediction, target) == 50.0
    got = segmentation_metrics([prediction], [target], overlaps=(0.1, 0.6))
    assert got == pytest.approx({"MoF": 70.0, "F1@10": 200 / 3, "F1@60": 0.0, "Edit": 50.0})


def test_edit_score_by_hand():
    assert edit_score([1, 1, 2, 3, 3], [1, 3, 3]) == pytest.approx(100 * (1 - 1 / 3))
    assert edit_score([5, 5], [5]) == 100.0
    assert edit_score([0, 0], [0, 0], background=(0,)) == 100.0  # both all background
    assert edit_score([1, 2], [0, 0], background=(0,)) == 0.0


@cache
def _recursive_levenshtein(a: tuple, b: tuple) -> int:
    if not a or not b:
        return len(a) + len(b)
    return min(
        _recursive_levenshtein(a[1:], b) + 1,
        _recursive_levenshtein(a, b[1:]) + 1,
        _recursive_levenshtein(a[1:], b[1:]) + (a[0] != b[0]),
    )


def _loop_segments(labels, background):
    """Segments by walking the frames one at a time."""
    segments = []
    for t, label in enumerate(labels):
        if t > 0 and labels[t - 1] == label:
            continue
        end = t
        while end < len(labels) and labels[end] == label:
            end += 1
        if label not in background:
            segments.append((label, t, end))
    return segments


def _loop_f1_counts(prediction, target, overlap, background):
    """The MS-TCN greedy matching, written with frame sets and plain loops."""
    truth = _loop_segments(target, background)
    taken = [False] * len(truth)
    tp = fp = 0
    for label, start, end in _loop_segments(prediction, background):
        frames = set(range(start, end))
        best, best_iou = None, -1.0
        for j, (true_label, true_start, true_end) in enumerate(truth):
            true_frames = set(range(true_start, true_end))
            iou = len(frames & true_frames) / len(frames | true_frames) if true_label == label else 0.0
            if iou > best_iou:
                best, best_iou = j, iou
        if best is not None and best_iou >= overlap and not taken[best]:
            tp, taken[best] = tp + 1, True
        else:
            fp += 1
    return tp, fp, taken.count(False)


def _random_video(rng, length, num_labels):
    # runs of random length so that segments are longer than a frame
    labels = []
    while len(labels) < length:
        labels += [int(rng.integers(num_labels)) - 1] * int(rng.integers(1, 6))
    return labels[:length]


@pytest.mark.parametrize("background", [(), (-1,)])
def test_f1_and_edit_match_loops(background):
    rng = np.random.default_rng(0)
    for _ in range(40):
        length = int(rng.integers(1, 40))
        target, prediction = _random_video(rng, length, 4), _random_video(rng, length, 4)
        for overlap in (0.1, 0.25, 0.5):
            loop = _loop_f1_counts(prediction, target, overlap, background)
            assert segment_f1_counts(prediction, target, overlap, background) == loop
        predicted = tuple(s[0] for s in _loop_segments(prediction, background))
        true = tuple(s[0] for s in _loop_segments(target, background))
        longest = max(len(predicted), len(true))
        expected = 100.0 if not longest else 100 * (1 - _recursive_levenshtein(predicted, true) / longest)
        assert edit_score(prediction, target, background) == pytest.approx(expected)


def test_f1_sums_counts_over_videos():
    videos = [([A, A, B, B], [A, A, B, B]), ([A, B, A, B], [A, A, A, A])]
    # video 0: 2 tp; video 1 at τ=0.5: A[0,1) IoU 1/4, A[2,3) IoU 1/4 -> 0 tp, 4 fp, 1 fn
    got = segmentation_metrics([p for p, _ in videos], [t for _, t in videos], overlaps=(0.5,))
    precision, recall = 2 / 6, 2 / 3
    assert got["F1@50"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert got["Edit"] == pytest.approx((100 + 100 * (1 - 3 / 4)) / 2)


def test_per_video_and_dataset_matching_by_hand():
    targets = [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1]]
    predictions = [[5, 5, 5, 7, 7], [7, 7, 5, 5, 5, 5]]
    assert segmentation_metrics(predictions, targets, matching="video")["MoF"] == 100.0
    # pooled votes: 5->0 & 7->1 agree on 3 + 2 frames, 5->1 & 7->0 on 4 + 2: the latter wins
    assert match_clusters(predictions, targets) == {5: 1, 7: 0}
    assert segmentation_metrics(predictions, targets, matching="dataset")["MoF"] == pytest.approx(600 / 11)
    # one group per video: the same as matching per video
    got = segmentation_metrics(predictions, targets, matching="dataset", groups=["a", "b"])
    assert got["MoF"] == 100.0
    # without matching, cluster ids never equal class ids
    assert segmentation_metrics(predictions, targets)["MoF"] == 0.0


def test_leftover_clusters_count_as_wrong():
    mapping = match_clusters([[0, 1, 2, 2]], [[0, 0, 1, 1]])
    assert mapping[2] == 1 and sorted(mapping.values())[-1] >= 2  # the leftover gets a fresh label
    got = segmentation_metrics([[0, 1, 2, 2]], [[0, 0, 1, 1]], matching="video", overlaps=(0.5,))
    assert got["MoF"] == 75.0
    assert got["Edit"] == pytest.approx(100 * (1 - 1 / 3))  # [0, fresh, 1] against [0, 1]


def test_background_is_not_matched_and_left_out_of_segments():
    target = [-1, -1, 0, 0, 1, 1]
    prediction = [-1, 3, 3, 3, 4, 4]
    assert match_clusters([prediction], [target], background=(-1,)) == {3: 0, 4: 1, -1: -1}
    got = segmentation_metrics([prediction], [target], matching="video", background=(-1,))
    # frame 1 is background predicted as class 0: wrong in MoF, not counted in MoF_fg
    assert got["MoF"] == pytest.approx(500 / 6) and got["MoF_fg"] == 100.0
    # segments without background: [0 [1,4), 1 [4,6)] against [0 [2,4), 1 [4,6)]
    assert got["F1@50"] == 100.0 and got["Edit"] == 100.0
    assert "MoF_fg" not in segmentation_metrics([prediction], [target], matching="video")
    # a predicted background is never matched to a class, even where the votes would favour it
    target, prediction = [0, 0, 0, 1, 1, 1], [-1, -1, -1, 3, 3, 3]
    assert segmentation_metrics([prediction], [target], matching="video", background=(-1,))["MoF"] == 50.0
    assert segmentation_metrics([prediction], [target], matching="video")["MoF"] == 100.0


def _brute_force_mof(predictions, targets):
    """Best one-to-one cluster -> class relabelling, trying every injective assignment."""
    predicted, true = np.concatenate(predictions), np.concatenate(targets)
    clusters, classes = sorted(set(predicted.tolist())), sorted(set(true.tolist()))
    best = 0
    for chosen in itertools.permutations(classes + [None] * len(clusters), len(clusters)):
        mapping = dict(zip(clusters, chosen))
        best = max(best, sum(mapping[p] == t for p, t in zip(predicted.tolist(), true.tolist())))
    return 100 * best / len(true)


def test_hungarian_matches_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(15):
        videos = [int(rng.integers(3, 12)) for _ in range(3)]
        num_clusters, num_classes = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        targets = [rng.integers(0, num_classes, n) for n in videos]
        predictions = [rng.integers(10, 10 + num_clusters, n) for n in videos]
        got = segmentation_metrics(predictions, targets, matching="dataset")["MoF"]
        assert got == pytest.approx(_brute_force_mof(predictions, targets))
        per_video = [_brute_force_mof([p], [t]) * len(t) / sum(videos) for p, t in zip(predictions, targets)]
        got = segmentation_metrics(predictions, targets, matching="video")["MoF"]
        assert got == pytest.approx(sum(per_video))


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="video 0"):
        segmentation_metrics([[0, 1]], [[0, 1, 1]])
    with pytest.raises(UsageError, match="matching"):
        segmentation_metrics([[0]], [[0]], matching="global")
    with pytest.raises(UsageError, match="groups"):
        segmentation_metrics([[0]], [[0]], groups=["a"])
    with pytest.raises(UsageError, match=r"predictions\[0\]"):
        segmentation_metrics([[0.5]], [[0]])
    with pytest.raises(UsageError, match="overlaps"):
        segmentation_metrics([[0]], [[0]], overlaps=(0.0,))
