"""Training objectives for late-interaction retrievers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def contrastive_loss(
    scores: Tensor, group_size: int, temperature: float, exclude: Tensor | None = None
) -> Tensor:
    """In-batch + hard-negative InfoNCE.

    Parameters
    ----------
    scores : Tensor[B, B * G]
        Query b against every document of the batch; query b's positive is column
        ``b * G`` and its hard negatives follow it.
    group_size : int
        G = 1 + number of hard negatives per query.
    temperature : float
        Scores are divided by it before the softmax.
    exclude : Tensor[B, B * G] or None
        True for documents left out of query b's softmax (known false negatives).

    Returns
    -------
    Tensor[]
        Mean cross-entropy of the positive against all documents of the batch.
    """
    targets = torch.arange(scores.shape[0], device=scores.device) * group_size
    logits = scores / temperature
    if exclude is not None:
        logits = logits.masked_fill(exclude.to(logits.device), float("-inf"))
    return F.cross_entropy(logits, targets)


def distillation_loss(
    scores: Tensor, teacher_scores: Tensor, temperature: float, teacher_temperature: float = 1.0
) -> Tensor:
    """KL(teacher || student) over each query's own candidates.

    Parameters
    ----------
    scores : Tensor[B, G]
        Student scores of query b against its G candidates.
    teacher_scores : Tensor[B, G]
        Teacher scores of the same candidates.
    temperature, teacher_temperature : float
        Softmax temperatures of student and teacher.

    Returns
    -------
    Tensor[]
        Batch-mean KL divergence.
    """
    student = F.log_softmax(scores / temperature, dim=-1)
    teacher = F.log_softmax(teacher_scores / teacher_temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


def pair_distillation_loss(scores: Tensor, teacher_scores: Tensor) -> Tensor:
    """Mean squared error between student and teacher scores of the same pairs.

    With the uncompressed model as the teacher, the compressed student learns to keep
    each (query, document) MaxSim of the full index, not only its ranking.

    Parameters
    ----------
    scores : Tensor[B, G]
        Student scores of query b against its G candidates.
    teacher_scores : Tensor[B, G]
        Teacher scores of the same candidates.

    Returns
    -------
    Tensor[]
        ``mean_(b, g) (scores - teacher_scores)^2``.
    """
    return F.mse_loss(scores, teacher_scores)


def own_candidates(scores: Tensor, group_size: int) -> Tensor:
    """Pick each query's own G candidates out of the all-pairs score matrix.

    Parameters
    ----------
    scores : Tensor[B, B * G]

    Returns
    -------
    Tensor[B, G]
    """
    b = scores.shape[0]
    return scores.view(b, b, group_size)[torch.arange(b), torch.arange(b)]
