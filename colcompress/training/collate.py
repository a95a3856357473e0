"""Turn training examples into tokenised tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from colcompress.models.colbert import ColBERT, Tokenized


@dataclass
class TrainBatch:
    """A tokenised training batch.

    Attributes
    ----------
    queries : Tokenized
        B queries.
    docs : Tokenized
        B * G documents, query b's group at rows ``b*G .. b*G + G - 1``, positive first.
    group_size : int
        G = 1 + hard negatives.
    teacher_scores : Tensor[B, G] or None
    """

    queries: Tokenized
    docs: Tokenized
    group_size: int
    teacher_scores: Tensor | None = None


class TrainCollator:
    """Collates ``TrainExample``s (``.query``, ``.docs``, ``.teacher_scores``).

    Parameters
    ----------
    model : ColBERT
        Supplies the tokenisation (query augmentation, markers, punctuation mask).
    """

    def __init__(self, model: ColBERT) -> None:
        self.model = model

    def __call__(self, examples: list[Any]) -> TrainBatch:
        sizes = {len(e.docs) for e in examples}
        if len(sizes) != 1:
            raise ValueError(f"every example needs the same number of documents, got {sorted(sizes)}")
        group = sizes.pop()
        queries = self.model.tokenize_queries([e.query for e in examples])
        docs = self.model.tokenize_documents([d for e in examples for d in e.docs])
        teacher = None
        if examples[0].teacher_scores is not None:
            teacher = torch.tensor([e.teacher_scores for e in examples], dtype=torch.float32)
        return TrainBatch(queries, docs, group, teacher)
