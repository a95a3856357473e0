"""Training objectives on hand-checked values."""

from __future__ import annotations

import math

import torch

from colcompress.training.losses import (
    contrastive_loss,
    distillation_loss,
    own_candidates,
    pair_distillation_loss,
)


def test_contrastive_targets_each_query_positive():
    # 2 queries, group size 2: positives at columns 0 and 2.
    scores = torch.tensor([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    expected = (
        -(
            math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 2))
            + math.log(math.exp(3) / (math.exp(3) + math.exp(1) + 2))
        )
        / 2
    )
    assert math.isclose(contrastive_loss(scores, 2, 1.0).item(), expected, rel_tol=1e-6)


def test_temperature_scales_scores():
    scores = torch.randn(3, 6)
    assert torch.isclose(contrastive_loss(scores, 2, 0.5), contrastive_loss(2 * scores, 2, 1.0))


def test_own_candidates_picks_each_group():
    scores = torch.arange(2 * 6, dtype=torch.float32).view(2, 6)  # B=2, G=3
    assert own_candidates(scores, 3).tolist() == [[0, 1, 2], [9, 10, 11]]


def test_distillation_zero_iff_distributions_match():
    s = torch.randn(4, 3)
    assert distillation_loss(s, s, 1.0).abs().item() < 1e-6
    assert distillation_loss(s, s + 10.0, 1.0).abs().item() < 1e-5  # shift-invariant
    assert distillation_loss(s, -s, 1.0).item() > 0


def test_excluded_false_negatives_leave_the_softmax():
    scores = torch.tensor([[2.0, 1.0, 5.0, 0.0], [0.0, 0.0, 3.0, 1.0]])
    exclude = torch.zeros(2, 4, dtype=torch.bool)
    exclude[0, 2] = True  # query 0's third column is one of its positives
    reference = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    expected = (
        torch.nn.functional.cross_entropy(reference[:1], torch.tensor([0]))
        + torch.nn.functional.cross_entropy(scores[1:], torch.tensor([2]))
    ) / 2
    got = contrastive_loss(scores, 2, 1.0, exclude)
    assert torch.isclose(got, expected)


def test_distillation_kl_on_hand_made_scores():
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    p1 = math.exp(1) / (math.exp(1) + 1)  # student, query 0
    t2 = math.exp(2) / (math.exp(2) + 1)  # teacher, query 1
    kl0 = 0.5 * math.log(0.5 / p1) + 0.5 * math.log(0.5 / (1 - p1))
    kl1 = t2 * math.log(t2 / 0.5) + (1 - t2) * math.log((1 - t2) / 0.5)
    got = distillation_loss(student, teacher, 1.0).item()
    assert math.isclose(got, (kl0 + kl1) / 2, rel_tol=1e-6)


def test_pair_distillation_is_the_mean_squared_score_difference():
    student = torch.tensor([[3.0, 1.0, 0.5], [2.0, 2.0, -1.0]])
    teacher = torch.tensor([[4.0, 1.0, 0.0], [2.0, 0.0, -1.0]])
    # differences -1, 0, 0.5, 0, 2, 0: (1 + 0.25 + 4) / 6
    assert math.isclose(pair_distillation_loss(student, teacher).item(), 5.25 / 6, rel_tol=1e-7)
    # unlike the KL, a shift of every score is a loss
    assert pair_distillation_loss(teacher + 1.0, teacher).item() == 1.0
    assert distillation_loss(teacher + 1.0, teacher, 1.0).abs().item() < 1e-6
