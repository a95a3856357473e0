"""Multi-vector indexes: exact flat MaxSim (ground truth) and fast-plaid (PLAID)."""

from __future__ import annotations

from colcompress.index.base import Index, SearchResult
from colcompress.index.fastplaid import FastPlaidIndex
from colcompress.index.flat import FlatIndex

__all__ = ["FastPlaidIndex", "FlatIndex", "Index", "SearchResult"]
