"""Multiple-choice accuracy by hand and against a per-question loop."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import UsageError
from zoo.eval.multiple_choice import multiple_choice_accuracy


def test_accuracy_by_hand_per_type():
    scores = torch.tensor(
        [
            [0.1, 0.7, 0.2],  # answer 1: right
            [0.5, 0.4, -torch.inf],  # answer 1: wrong; the third candidate does not exist
            [0.3, 0.3, 0.1],  # answer 0: tied with candidate 1 -> wrong
            [0.0, 0.2, 0.9],  # answer 2: right
        ]
    )
    answers = torch.tensor([1, 1, 0, 2])
    got = multiple_choice_accuracy(scores, answers, question_types=["what", "why", "what", "why"])
    assert got == {"accuracy": 50.0, "accuracy/what": 50.0, "accuracy/why": 50.0}
    assert multiple_choice_accuracy(scores, answers) == {"accuracy": 50.0}


def test_constant_scores_score_zero():
    assert multiple_choice_accuracy(torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))["accuracy"] == 0.0


def test_matches_loop():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 5), generator=g).float()  # coarse: ties happen
    answers = torch.randint(0, 5, (50,), generator=g)
    types = [("who", "when")[i % 2] for i in range(50)]
    got = multiple_choice_accuracy(scores, answers, types)
    rows = scores.tolist()
    right = [
        all(rows[i][answers[i]] > s for j, s in enumerate(rows[i]) if j != answers[i]) for i in range(50)
    ]
    for key, members in {
        "accuracy": range(50),
        "accuracy/who": range(0, 50, 2),
        "accuracy/when": range(1, 50, 2),
    }.items():
        assert got[key] == pytest.approx(100 * sum(right[i] for i in members) / len(members))


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="answers"):
        multiple_choice_accuracy(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(UsageError, match="outside"):
        multiple_choice_accuracy(torch.zeros(2, 4), torch.tensor([0, 4]))
    with pytest.raises(UsageError, match="question_types"):
        multiple_choice_accuracy(torch.zeros(2, 4), torch.tensor([0, 1]), ["what"])
