"""Multi-vector indexes: exact flat MaxSim (ground truth) and fast-plaid (PLAID), built
from vectors in memory or from a vector store on disk."""

from __future__ import annotations

from colcompress.index.base import Index, SearchResult
from colcompress.index.fastplaid import FastPlaidIndex
from colcompress.index.flat import FlatIndex
from colcompress.index.store import VectorStore, VectorStoreWriter

__all__ = [
    "FastPlaidIndex",
    "FlatIndex",
    "Index",
    "SearchResult",
    "VectorStore",
    "VectorStoreWriter",
]
