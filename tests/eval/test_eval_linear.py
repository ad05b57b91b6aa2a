"""Linear probe: solvers agree, the symmetric problem's boundary is at the midpoint, separable data is solved."""

from __future__ import annotations

import pytest
import torch

from zoo.eval.linear import linear_probe, train_linear_classifier


def test_symmetric_two_class_boundary_at_midpoint():
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]]) + 10.0  # offset: standardisation is folded back
    y = torch.tensor([0, 0, 1, 1])
    clf = train_linear_classifier(x, y, 2, weight_decay=1e-2)
    with torch.no_grad():
        logits = clf(torch.tensor([[10.0], [9.9], [10.1]]))
    assert abs(float(logits[0, 0] - logits[0, 1])) < 1e-4  # x = 10 is the midpoint
    assert logits[1].argmax() == 0 and logits[2].argmax() == 1


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_separable_blobs(solver):
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(6, 16, generator=g) * 3
    train_y, test_y = torch.arange(6).repeat_interleave(20), torch.arange(6).repeat_interleave(5)
    train_x = centers[train_y] + torch.randn(120, 16, generator=g) * 0.3
    test_x = centers[test_y] + torch.randn(30, 16, generator=g) * 0.3
    result = linear_probe(train_x, train_y, test_x, test_y, solver=solver, epochs=30)
    assert result.top1 == 100.0 and result.train_top1 == 100.0 and result.top5 == 100.0


def test_unlearnable_labels_stay_near_chance():
    g = torch.Generator().manual_seed(1)
    train_x, test_x = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    train_y, test_y = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (400,), generator=g)
    assert linear_probe(train_x, train_y, test_x, test_y).top1 < 35.0
