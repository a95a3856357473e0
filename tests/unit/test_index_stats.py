"""index_stats: the compression ratio of a budget above the document length."""

from __future__ import annotations

import pytest
import torch

from colcompress.evaluation.encode import Encoded
from colcompress.evaluation.evaluator import index_stats
from colcompress.index.flat import FlatIndex


def _stats(lengths: list[int], budget: int | None) -> dict:
    kept = [min(n, budget or n) for n in lengths]  # what a budgeted compressor keeps
    vectors = [torch.nn.functional.normalize(torch.randn(k, 4), dim=-1) for k in kept]
    index = FlatIndex()
    index.build(vectors, [f"d{i}" for i in range(len(lengths))])
    return index_stats(Encoded(vectors, torch.tensor(lengths), 0.0), index, budget)


def test_budget_below_the_document_length_follows_the_paper():
    stats = _stats([4, 8, 12], budget=4)
    assert stats["compression_ratio"] == pytest.approx(1 - 4 / 8)
    assert stats["vector_reduction"] == pytest.approx(1 - 12 / 24)
    assert "budget_note" not in stats and "docs_within_budget" not in stats


def test_budget_above_the_document_length_is_clamped_and_explained():
    stats = _stats([3, 5, 40], budget=32)  # avg 16 tokens: 1 - 32/16 would be -1
    assert stats["compression_ratio"] == 0.0
    assert stats["docs_within_budget"] == 2
    assert stats["vector_reduction"] == pytest.approx(1 - 40 / 48)
    assert stats["budget_note"] == (
        "budget 32 is above the average document length (16.0 tokens): 2 of 3 documents "
        "have at most 32 tokens and are indexed whole, so compression_ratio "
        "(1 - budget / avg_tokens = -1.000) is clamped at 0; vector_reduction is the "
        "measured reduction"
    )


def test_no_budget_no_ratio():
    assert _stats([3, 5], budget=None)["compression_ratio"] is None
