"""Re-identification CMC and mAP by hand and against a per-query loop implementation."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.errors import UsageError
from zoo.eval.reid import reid_metrics

GALLERY = torch.tensor([[0.1], [0.2], [0.3], [0.4], [0.5], [0.6], [0.7]])
GALLERY_IDS = torch.tensor([1, 2, 1, 3, 1, -1, 1])
GALLERY_CAMERAS = torch.tensor([0, 1, 1, 0, 2, 1, 1])
QUERIES = torch.tensor([[0.0], [0.45], [0.19]])
QUERY_IDS = torch.tensor([1, 3, 2])
QUERY_CAMERAS = torch.tensor([0, 0, 0])


def test_reid_by_hand():
    got = reid_metrics(
        QUERIES,
        QUERY_IDS,
        QUERY_CAMERAS,
        GALLERY,
        GALLERY_IDS,
        GALLERY_CAMERAS,
        ranks=(1, 2),
        ignore_ids=(-1,),
    )
    # query 0 (id 1, camera 0): gallery 0 is the same camera, gallery 5 junk; the rest ranks
    # wrong, right, wrong, right, right -> first hit at 2, AP = (1/2 + 2/4 + 3/5) / 3
    # query 1 (id 3): its only match shares its camera -> skipped
    # query 2 (id 2): gallery 1 is nearest -> rank 1, AP 1
    assert got == pytest.approx(
        {
            "rank-1": 50.0,
            "rank-2": 100.0,
            "mAP": 100 * ((1 / 2 + 2 / 4 + 3 / 5) / 3 + 1) / 2,
            "evaluated_queries": 2.0,
            "skipped_queries": 1.0,
        }
    )
    # without junk removal, gallery 5 is one more wrong item before the last match
    got = reid_metrics(QUERIES, QUERY_IDS, QUERY_CAMERAS, GALLERY, GALLERY_IDS, GALLERY_CAMERAS, ranks=(1,))
    assert got["mAP"] == pytest.approx(100 * ((1 / 2 + 2 / 4 + 3 / 6) / 3 + 1) / 2)


def _loop_reid(queries, query_ids, query_cameras, gallery, gallery_ids, gallery_cameras, ranks):
    """One query at a time: filter the gallery list, sort by (distance, index), walk the ranking."""
    cmc = dict.fromkeys(ranks, 0)
    precisions, skipped = [], 0
    for q in range(len(queries)):
        kept = [
            g
            for g in range(len(gallery))
            if not (gallery_ids[g] == query_ids[q] and gallery_cameras[g] == query_cameras[q])
        ]
        kept.sort(key=lambda g: (math.dist(queries[q].tolist(), gallery[g].tolist()), g))
        matches = [bool(gallery_ids[g] == query_ids[q]) for g in kept]
        if not any(matches):
            skipped += 1
            continue
        first = matches.index(True) + 1
        for k in ranks:
            cmc[k] += first <= k
        found, precision_sum = 0, 0.0
        for position, match in enumerate(matches, start=1):
            if match:
                found += 1
                precision_sum += found / position
        precisions.append(precision_sum / found)
    evaluated = len(queries) - skipped
    return {f"rank-{k}": 100 * cmc[k] / evaluated for k in ranks} | {
        "mAP": 100 * sum(precisions) / evaluated,
        "evaluated_queries": float(evaluated),
        "skipped_queries": float(skipped),
    }


def test_reid_matches_loop():
    g = torch.Generator().manual_seed(0)
    gallery, queries = torch.randn(60, 5, generator=g), torch.randn(25, 5, generator=g)
    gallery_ids, query_ids = torch.randint(0, 8, (60,), generator=g), torch.randint(0, 10, (25,), generator=g)
    gallery_cameras, query_cameras = (
        torch.randint(0, 3, (60,), generator=g),
        torch.randint(0, 3, (25,), generator=g),
    )
    ranks = (1, 5, 10, 20)
    got = reid_metrics(
        queries, query_ids, query_cameras, gallery, gallery_ids, gallery_cameras, ranks=ranks, chunk_size=7
    )
    expected = _loop_reid(queries, query_ids, query_cameras, gallery, gallery_ids, gallery_cameras, ranks)
    assert expected["skipped_queries"] > 0  # identities 8 and 9 never appear in the gallery
    assert got == pytest.approx(expected)


def test_cosine_metric_ignores_feature_norms():
    args = (QUERY_IDS, QUERY_CAMERAS)
    gallery = torch.randn(7, 4, generator=torch.Generator().manual_seed(1))
    queries = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    plain = reid_metrics(queries, *args, gallery, GALLERY_IDS, GALLERY_CAMERAS, metric="cosine")
    scaled = reid_metrics(
        queries * 5,
        *args,
        gallery * torch.rand(7, 1) * 9 + 0.1,
        GALLERY_IDS,
        GALLERY_CAMERAS,
        metric="cosine",
    )
    assert plain == scaled


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="gallery_cameras"):
        reid_metrics(QUERIES, QUERY_IDS, QUERY_CAMERAS, GALLERY, GALLERY_IDS, GALLERY_CAMERAS[:3])
    with pytest.raises(UsageError, match="metric"):
        reid_metrics(QUERIES, QUERY_IDS, QUERY_CAMERAS, GALLERY, GALLERY_IDS, GALLERY_CAMERAS, metric="l1")
    with pytest.raises(UsageError, match="no query"):
        reid_metrics(QUERIES[1:2], QUERY_IDS[1:2], QUERY_CAMERAS[1:2], GALLERY, GALLERY_IDS, GALLERY_CAMERAS)
