"""Hashing mAP by hand (ties, top-k) and against scikit-learn's average precision on tie-free rankings."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import average_precision_score

from zoo.errors import UsageError
from zoo.eval.hashing import hamming_distances, hashing_map

QUERY = torch.tensor([[1, 1, 1, 1]])
DATABASE = torch.tensor([[1, 1, 1, -1], [1, 1, 1, 1], [-1, 1, 1, -1], [1, -1, 1, 1]])  # distances 1, 0, 2, 1
DATABASE_LABELS = torch.tensor([0, 1, 1, 1])


def test_hamming_distances_by_hand():
    assert hamming_distances(QUERY, DATABASE).tolist() == [[1, 0, 2, 1]]
    assert hamming_distances((QUERY > 0).long(), (DATABASE > 0).long()).tolist() == [[1, 0, 2, 1]]


def test_hashing_map_by_hand_with_ties_in_database_order():
    # ranking: item 1 (0, relevant), then the tie at distance 1 in database order: item 0 (irrelevant),
    # item 3 (relevant), then item 2 (2, relevant): AP = (1/1 + 2/3 + 3/4) / 3
    ap = (1 + 2 / 3 + 3 / 4) / 3
    assert hashing_map(QUERY, torch.tensor([1]), DATABASE, DATABASE_LABELS)["mAP"] == pytest.approx(100 * ap)
    # {0, 1} codes give the same ranking
    zero_one = hashing_map((QUERY > 0).int(), torch.tensor([1]), (DATABASE > 0).int(), DATABASE_LABELS)
    assert zero_one["mAP"] == pytest.approx(100 * ap)
    # top-2 holds one relevant item, at rank 1
    assert hashing_map(QUERY, torch.tensor([1]), DATABASE, DATABASE_LABELS, top_k=2) == {"mAP@2": 100.0}
    # a second query with no relevant item scores 0 and still counts
    got = hashing_map(QUERY.repeat(2, 1), torch.tensor([1, 2]), DATABASE, DATABASE_LABELS)
    assert got["mAP"] == pytest.approx(100 * ap / 2)


def test_multi_label_relevance_is_a_shared_label():
    database_labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    # query labels {0, 2}: items 0, 1, 2 and 3 all share one -> every item relevant -> AP 1
    assert hashing_map(QUERY, torch.tensor([[1, 0, 1]]), DATABASE, database_labels)["mAP"] == 100.0
    # query label {1}: items 1 and 3 relevant -> ranking 1 (yes), 0 (no), 3 (yes), 2 (no) -> (1 + 2/3) / 2
    got = hashing_map(QUERY, torch.tensor([[0, 1, 0]]), DATABASE, database_labels)
    assert got["mAP"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    # one-hot labels are the single-label case
    one_hot = torch.nn.functional.one_hot(DATABASE_LABELS, 3)
    assert hashing_map(QUERY, one_hot[1:2], DATABASE, one_hot) == hashing_map(
        QUERY, torch.tensor([1]), DATABASE, DATABASE_LABELS
    )


def test_matches_sklearn_on_tie_free_rankings():
    g = torch.Generator().manual_seed(0)
    bits = 16
    for _ in range(5):
        query = torch.randint(0, 2, (1, bits), generator=g) * 2 - 1
        # database item j differs from the query in j bits: distances 0..16, all different
        database = query.repeat(bits + 1, 1)
        for j in range(bits + 1):
            flip = torch.randperm(bits, generator=g)[:j]
            database[j, flip] *= -1
        shuffle = torch.randperm(bits + 1, generator=g)
        database = database[shuffle]
        query_labels = torch.randint(0, 2, (1, 5), generator=g)
        query_labels[0, 0] = 1
        database_labels = torch.randint(0, 2, (bits + 1, 5), generator=g)
        database_labels[0, 0] = 1  # at least one relevant item
        relevant = (database_labels * query_labels).sum(1) > 0
        distances = (database != query).sum(1)
        expected = average_precision_score(relevant.numpy(), -distances.numpy())
        got = hashing_map(query, query_labels, database, database_labels)["mAP"]
        assert got == pytest.approx(100 * expected)


def test_bad_codes_and_labels_are_usage_errors():
    with pytest.raises(UsageError, match="query_codes"):
        hashing_map(torch.tensor([[0.3, -0.2, 0.9, 0.1]]), torch.tensor([1]), DATABASE, DATABASE_LABELS)
    with pytest.raises(UsageError, match="bits"):
        hashing_map(QUERY[:, :3], torch.tensor([1]), DATABASE, DATABASE_LABELS)
    with pytest.raises(UsageError, match="multi-hot"):
        hashing_map(QUERY, torch.tensor([[1, 0]]), DATABASE, DATABASE_LABELS)
    with pytest.raises(UsageError, match="database_labels has 3 rows"):
        hashing_map(QUERY, torch.tensor([1]), DATABASE, DATABASE_LABELS[:3])
