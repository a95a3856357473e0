"""BEIR's evaluation conventions, per collection: query length and identical ids.

- ``query_length``: queries are cut at the model's query length (32 tokens, a ColBERT
  default that suits short questions). Collections with long queries (ArguAna's
  arguments, Touché's topics) set their own, or ``auto``: long enough for 99% of the
  collection's queries to be whole, capped by the model (:func:`auto_query_length`).
- ``ignore_identical_ids``: on ArguAna and Quora a query is itself a corpus document,
  and BEIR drops a retrieved document whose id equals the query id before scoring.

Both default to the collection's entry in
:data:`~colcompress.data.collections.BEIR_COLLECTIONS` and apply to the model and
to every baseline alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from colcompress.data.collections import BEIR_COLLECTIONS

__all__ = ["AUTO_QUANTILE", "Conventions", "auto_query_length"]

AUTO_QUANTILE = 0.99  # share of queries ``query_length: auto`` keeps whole


@dataclass(frozen=True)
class Conventions:
    """How one collection is evaluated.

    Attributes
    ----------
    query_length : int, "auto" or None
        Query length in tokens; ``auto`` (see :func:`auto_query_length`); None: the
        model's own.
    ignore_identical_ids : bool
        Drop a retrieved document whose id equals the query id.
    """

    query_length: int | str | None
    ignore_identical_ids: bool

    def __post_init__(self) -> None:
        ql = self.query_length
        if ql is not None and ql != "auto" and (isinstance(ql, bool) or not isinstance(ql, int)):
            raise ValueError(f"dataset.query_length must be an integer, auto or null, got {ql!r}")
        if isinstance(ql, int) and ql < 2:
            raise ValueError(f"dataset.query_length must be >= 2 tokens, got {ql}")

    @classmethod
    def of(
        cls, name: str, query_length: int | str | None, ignore_identical_ids: bool | None
    ) -> Conventions:
        """The settings given, the BEIR table's for ``name`` where None."""
        known = BEIR_COLLECTIONS.get(name)
        if query_length is None and known is not None:
            query_length = known.query_length
        if ignore_identical_ids is None:
            ignore_identical_ids = known.ignore_identical_ids if known is not None else False
        return cls(query_length, bool(ignore_identical_ids))


def auto_query_length(lengths: list[int], cap: int, quantile: float = AUTO_QUANTILE) -> int:
    """The query length that keeps ``quantile`` of the queries whole, at most ``cap``.

    Parameters
    ----------
    lengths : list of int
        Token count of every query as the model tokenises it (special tokens and
        markers included, untruncated).
    cap : int
        The model's longest input.
    quantile : float
        Share of queries to keep whole (the longest 1% are outliers on most
        collections: one 2,000-token query would set the length of all).

    Returns
    -------
    int
        The ``ceil(quantile * n)``-th shortest length, in ``[2, cap]``.
    """
    if not lengths:
        raise ValueError("auto_query_length: no queries")
    ordered = sorted(lengths)
    kept = ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]
    return max(2, min(int(kept), cap))
