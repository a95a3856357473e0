"""Turn training examples into tokenised tensors."""

from __future__ import annotations

from collections.abc import Callable
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
    docs : Tokenized or another document batch of the model
        B * G documents, query b's group at rows ``b*G .. b*G + G - 1``, positive first.
    group_size : int
        G = 1 + hard negatives.
    teacher_scores : Tensor[B, G] or None
    false_negatives : Tensor[B, B * G] or None
        True where a document of *another* query's group is a known positive of
        query b (or the same document as b's positive): masked out of b's softmax.
    """

    queries: Tokenized
    docs: Any
    group_size: int
    teacher_scores: Tensor | None = None
    false_negatives: Tensor | None = None


class TrainCollator:
    """Collates ``TrainExample``s (``.query``, ``.docs``, ``.doc_ids``, ``.teacher_scores``).

    Parameters
    ----------
    model : ColBERT
        Supplies the tokenisation (query augmentation, markers, punctuation mask).
    positives : callable or None
        ``qid -> set of relevant doc ids``; when given, in-batch documents that are
        known positives of a query are not used as its negatives.
    doc_length : int or None
        Truncation length of training documents (None: the model's ``doc_length``,
        which indexing always uses). Shorter training documents make CPU steps
        cheaper, as ColBERT and PyLate train at 180 tokens.
    """

    def __init__(
        self,
        model: ColBERT,
        positives: Callable[[str], set[str]] | None = None,
        doc_length: int | None = None,
    ) -> None:
        self.model = model
        self.positives = positives
        self.doc_length = doc_length

    def _false_negatives(self, examples: list[Any], group: int) -> Tensor | None:
        if self.positives is None:
            return None
        doc_ids = [d for e in examples for d in e.doc_ids]
        mask = torch.zeros(len(examples), len(doc_ids), dtype=torch.bool)
        for b, example in enumerate(examples):
            relevant = self.positives(example.qid) | {example.doc_ids[0]}
            for j, doc_id in enumerate(doc_ids):
                mask[b, j] = doc_id in relevant and j // group != b
        return mask if mask.any() else None

    def __call__(self, examples: list[Any]) -> TrainBatch:
        sizes = {len(e.docs) for e in examples}
        if len(sizes) != 1:
            raise ValueError(
                f"every example needs the same number of documents, got {sorted(sizes)}"
            )
        group = sizes.pop()
        queries = self.model.tokenize_queries([e.query for e in examples])
        inputs = [
            self.model.document_input(doc_id, doc)
            for e in examples
            for doc_id, doc in zip(e.doc_ids, e.docs, strict=True)
        ]
        docs = self.model.tokenize_documents(inputs, self.doc_length)
        teacher = None
        if examples[0].teacher_scores is not None:
            teacher = torch.tensor([e.teacher_scores for e in examples], dtype=torch.float32)
        return TrainBatch(queries, docs, group, teacher, self._false_negatives(examples, group))
