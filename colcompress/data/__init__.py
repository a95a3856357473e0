"""BEIR data: loading, download, BM25 negatives and the Lightning DataModule.

``RetrievalDataModule`` and ``TrainExample`` are imported lazily, so loading data or
running BM25 does not import torch and Lightning; ``bm25_search`` and
``mine_negatives`` too, so reading a collection does not import bm25s and numba.
"""

from __future__ import annotations

from typing import Any

from colcompress.data.beir import BeirData, DataFormatError, Doc, load_beir, slice_beir
from colcompress.data.download import ensure_beir

__all__ = [
    "BeirData",
    "DataFormatError",
    "Doc",
    "RetrievalDataModule",
    "TrainExample",
    "bm25_search",
    "ensure_beir",
    "load_beir",
    "mine_negatives",
    "slice_beir",
]


def __getattr__(name: str) -> Any:
    if name in ("RetrievalDataModule", "TrainExample"):
        from colcompress.data import datamodule

        return getattr(datamodule, name)
    if name in ("bm25_search", "mine_negatives"):
        from colcompress.data import negatives

        return getattr(negatives, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
