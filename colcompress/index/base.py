"""The Index contract shared by FastPlaid and the flat exact index."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor

from colcompress.index.store import VectorStore


@dataclass
class SearchResult:
    """Ranked results for a batch of queries.

    Attributes
    ----------
    ids : list of list of str
        ``ids[q]`` are the document ids for query ``q``, best first (at most k).
    scores : list of list of float
        Scores aligned with ``ids``.
    """

    ids: list[list[str]]
    scores: list[list[float]]

    def as_run(self, query_ids: list[str]) -> dict[str, dict[str, float]]:
        """The ranking as a ranx/TREC run: query id -> {document id: score}.

        Parameters
        ----------
        query_ids : list of str
            Ids of the searched queries, in search order.
        """
        return {
            q: dict(zip(ids, scores, strict=True))
            for q, ids, scores in zip(query_ids, self.ids, self.scores, strict=True)
        }


class Index(ABC):
    """A multi-vector index over documents of variable vector counts.

    Scores are MaxSim, ``sum_i max_j <q_i, d_j>``, or with ``relu`` (ColBERT_P of
    Zong & Piwowarski 2025) ``sum_i max(0, max_j <q_i, d_j>)``: every query token
    adds at least 0. Implementations take ``relu`` as a constructor option.
    """

    @abstractmethod
    def build(self, doc_vectors: list[Tensor], ids: list[str]) -> None:
        """Index documents.

        Parameters
        ----------
        doc_vectors : list of Tensor[m_i, D]
            One tensor per document, padding already removed (``m_i >= 1``).
        ids : list of str
            Document ids aligned with ``doc_vectors``; must be unique.
        """

    def build_from_store(self, store: VectorStore) -> None:
        """Index the documents of a store, holding a bounded part of them in memory.

        Parameters
        ----------
        store : VectorStore
            Documents and ids in store order (float16 vectors on disk).

        Raises
        ------
        NotImplementedError
            For an index that can only build from vectors in memory.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot build from a vector store; "
            "give it the vectors in memory (build)"
        )

    @abstractmethod
    def search(self, queries: list[Tensor], k: int) -> SearchResult:
        """Rank documents for each query by MaxSim.

        Parameters
        ----------
        queries : list of Tensor[l_q, D]
            One tensor per query, padding removed.
        k : int
            Number of documents to return per query.
        """

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes the index occupies (on disk where it lives on disk)."""

    @property
    @abstractmethod
    def num_vectors(self) -> int:
        """Total number of indexed document vectors."""
