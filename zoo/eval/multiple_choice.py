"""Multiple-choice accuracy (video QA such as TVQA, MSR-VTT multiple choice), overall and per question type.

A question is answered correctly when its answer's score is strictly higher than every other
candidate's: a tie for the top counts as wrong, so a model that scores every candidate the same gets
0, not the share of questions whose answer happens to come first. Candidates that a question does not
have can be given the score ``-inf``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo.errors import UsageError

__all__ = ["multiple_choice_accuracy"]


@torch.no_grad()
def multiple_choice_accuracy(
    scores: torch.Tensor, answers: torch.Tensor, question_types: Sequence[str] | None = None
) -> dict[str, float]:
    """``{"accuracy": ...}`` in percent, plus ``accuracy/<type>`` per question type when types are given.

    Args:
        scores: (N, A) score of each of the A candidate answers of every question, higher is better.
        answers: (N,) index of the correct candidate.
        question_types: type of each question (N of them), e.g. "what", "why"; None for overall only.
    """
    if scores.ndim != 2 or answers.shape != (len(scores),):
        raise UsageError(
            f"scores must be (questions, candidates) and answers (questions,); "
            f"got scores {tuple(scores.shape)} and answers {tuple(answers.shape)}"
        )
    num_candidates = scores.shape[1]
    answers = answers.long().to(scores.device)
    if len(answers) and (answers.min() < 0 or answers.max() >= num_candidates):
        raise UsageError(f"answers hold a candidate index outside [0, {num_candidates})")
    if question_types is not None and len(question_types) != len(scores):
        raise UsageError(f"question_types has {len(question_types)} entries for {len(scores)} questions")
    answer_score = scores.gather(1, answers[:, None])  # (N, 1)
    others = torch.ones_like(scores, dtype=torch.bool).scatter_(1, answers[:, None], False)  # (N, A)
    correct = ~((scores >= answer_score) & others).any(dim=1)  # (N,)
    metrics = {"accuracy": 100 * float(correct.double().mean())}
    for question_type in sorted(set(question_types or ())):
        of_type = torch.tensor([t == question_type for t in question_types], device=correct.device)
        metrics[f"accuracy/{question_type}"] = 100 * float(correct[of_type].double().mean())
    return metrics
