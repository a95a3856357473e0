"""Exact MaxSim search over every stored document vector: the ground truth index."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from tqdm.auto import tqdm

from colcompress.index.base import Index, SearchResult
from colcompress.index.checks import validate_documents, validate_queries
from colcompress.index.store import VectorStore
from colcompress.padding import pad_stack


class FlatIndex(Index):
    """Exact (brute-force) MaxSim index: the ground truth approximate indexes are checked against.

    Documents are sorted by length and scored in padded blocks of ``batch_size``
    documents. Every block row carries one extra coordinate: 0 for real vectors and
    the dtype's lowest value for padding; queries get a matching coordinate of 1, so
    one matrix product yields similarities in which padding can never win a max.
    Search scores every document block against every query block (queries grouped by
    length, so little query padding) with batched tensor ops and keeps a running top-k
    per query.

    :meth:`build` keeps every block in memory. :meth:`build_from_store` keeps only a
    :class:`~colcompress.index.store.VectorStore` and reads each block from it during
    search, so search holds one block of documents at a time; the blocks, and hence
    the scores, are the same as :meth:`build` gives on the stored (float16) values.

    Parameters
    ----------
    batch_size : int
        Documents per block (the document side of one scoring step).
    dtype : torch.dtype
        Storage and scoring dtype of the vectors.
    query_batch_size : int
        Queries per scoring step. One step materialises a
        ``[query_batch_size, l_q, batch_size, m]`` similarity tensor.
    device : str or torch.device
        Where the blocks live and scoring runs.
    relu : bool
        Clamp each query token's maximum at 0 (ColBERT_P scoring).
    progress : bool
        Draw a tqdm bar (documents scored, ETA) during :meth:`search`.

    Notes
    -----
    Ties are broken deterministically: among equal scores the document given earlier to
    :meth:`build` (earlier in the store) ranks first.
    """

    def __init__(
        self,
        batch_size: int = 1024,
        dtype: torch.dtype = torch.float32,
        query_batch_size: int = 16,
        device: str | torch.device = "cpu",
        relu: bool = False,
        progress: bool = False,
    ) -> None:
        if batch_size < 1 or query_batch_size < 1:
            raise ValueError(
                f"FlatIndex: batch_size={batch_size}, query_batch_size={query_batch_size}; "
                "expected both >= 1"
            )
        self.batch_size = batch_size
        self.dtype = dtype
        self.query_batch_size = query_batch_size
        self.device = torch.device(device)
        self.relu = relu
        self.progress = progress
        self._ids: list[str] = []
        self._dim = 0
        self._num_vectors = 0
        # in memory: (rows[b * L, D + 1] with the padding coordinate, positions[b], L)
        self._blocks: list[tuple[Tensor, Tensor, int]] = []
        self._store: VectorStore | None = None
        self._order = torch.zeros(0, dtype=torch.long)  # positions by length

    def build(self, doc_vectors: list[Tensor], ids: list[str]) -> None:
        """Store the documents in memory, replacing anything built before.

        Parameters
        ----------
        doc_vectors : list of Tensor[m_i, D]
            One tensor per document, padding removed (``m_i >= 1``).
        ids : list of str
            Unique document ids aligned with ``doc_vectors``.
        """
        dim = validate_documents(doc_vectors, ids, "FlatIndex.build")
        lengths = torch.tensor([d.shape[0] for d in doc_vectors])
        self._set(ids, dim, lengths, None)
        self._blocks = [
            self._pack([doc_vectors[p] for p in positions.tolist()], positions)
            for positions in self._block_positions()
        ]

    def build_from_store(self, store: VectorStore) -> None:
        """Search ``store`` block by block, replacing anything built before.

        Parameters
        ----------
        store : VectorStore
            Read during every :meth:`search`; it must stay in place until then.
        """
        self._set(store.ids, store.dim, store.lengths, store)
        self._blocks = []

    def _set(self, ids: list[str], dim: int, lengths: Tensor, store: VectorStore | None) -> None:
        self._ids = list(ids)
        self._dim = dim
        self._num_vectors = int(lengths.sum())
        self._order = torch.sort(lengths, stable=True).indices
        self._store = store

    def _block_positions(self) -> list[Tensor]:
        """Document positions of each block: the length order cut every ``batch_size``."""
        return list(torch.split(self._order, self.batch_size))

    def _pack(self, docs: list[Tensor], positions: Tensor) -> tuple[Tensor, Tensor, int]:
        """One block: ``docs`` (Tensor[m_i, D] at ``positions``) padded, with the
        padding coordinate, as ``(rows[b * L, D + 1], positions[b], L)``."""
        docs = [d.detach().to(device=self.device, dtype=self.dtype) for d in docs]
        vectors, mask = pad_stack(docs)
        pad_coord = torch.zeros(mask.shape, dtype=self.dtype, device=self.device)
        pad_coord.masked_fill_(~mask, torch.finfo(self.dtype).min)
        rows = torch.cat([vectors, pad_coord[..., None]], dim=-1)
        return rows.flatten(0, 1), positions.to(self.device), vectors.shape[1]

    def _doc_blocks(self) -> Iterator[tuple[Tensor, Tensor, int]]:
        """Every block, from memory or read from the store one at a time."""
        if self._store is None:
            yield from self._blocks
            return
        for positions in self._block_positions():
            yield self._pack(self._store.gather(positions.tolist()), positions)

    @torch.inference_mode()
    def search(self, queries: list[Tensor], k: int) -> SearchResult:
        """Rank all documents for each query by exact MaxSim.

        Parameters
        ----------
        queries : list of Tensor[l_q, D]
            One tensor per query, padding removed.
        k : int
            Results per query; ``min(k, number of documents)`` are returned.

        Returns
        -------
        SearchResult
            Ids and scores, best first.
        """
        if not self._ids:
            raise RuntimeError("FlatIndex.search: the index is empty; call build() first")
        validate_queries(queries, self._dim, k, "FlatIndex.search")
        k = min(k, len(self._ids))
        # Longest first, so a block pads its queries to similar lengths.
        order = sorted(range(len(queries)), key=lambda i: -queries[i].shape[0])
        groups = [
            order[start : start + self.query_batch_size]
            for start in range(0, len(order), self.query_batch_size)
        ]
        blocks = [self._query_block(members, queries) for members in groups]
        score_dtype = torch.promote_types(self.dtype, torch.float32)
        best = [
            (
                torch.empty(len(members), 0, dtype=score_dtype, device=self.device),
                torch.empty(len(members), 0, dtype=torch.long, device=self.device),
            )
            for members in groups
        ]
        bar = tqdm(total=len(self._ids), desc="search", unit="doc", disable=not self.progress)
        for rows, positions, doc_len in self._doc_blocks():
            for b, (flat_queries, weights) in enumerate(blocks):
                scores = self._score(flat_queries, weights, rows, doc_len).to(score_dtype)
                best[b] = _merge_top_k(*best[b], scores, positions, k)
            bar.update(len(positions))
        bar.close()
        ids: list[list[str]] = [[] for _ in queries]
        scores_out: list[list[float]] = [[] for _ in queries]
        for members, (top_scores, top_positions) in zip(groups, best, strict=True):
            for i, row_scores, row_positions in zip(
                members, top_scores.tolist(), top_positions.tolist(), strict=True
            ):
                ids[i] = [self._ids[p] for p in row_positions]
                scores_out[i] = row_scores
        return SearchResult(ids=ids, scores=scores_out)

    def _query_block(self, members: list[int], queries: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Queries ``members`` padded, with the matching coordinate 1.

        Returns
        -------
        flat_queries : Tensor[Bq * Lq, D + 1]
        weights : Tensor[Bq, Lq, 1]
            1 for real query tokens, 0 for padding.
        """
        block = [queries[i].detach().to(device=self.device, dtype=self.dtype) for i in members]
        padded, mask = pad_stack(block)
        n_queries, query_len, _ = padded.shape
        ones = torch.ones(n_queries, query_len, 1, dtype=self.dtype, device=self.device)
        flat_queries = torch.cat([padded, ones], dim=-1).flatten(0, 1)
        return flat_queries, mask.to(self.dtype)[..., None]

    def _score(self, flat_queries: Tensor, weights: Tensor, rows: Tensor, doc_len: int) -> Tensor:
        """MaxSim of one query block against one document block.

        Parameters
        ----------
        flat_queries : Tensor[Bq * Lq, D + 1]
        weights : Tensor[Bq, Lq, 1]
        rows : Tensor[b * L, D + 1]
        doc_len : int
            L, the block's padded document length.

        Returns
        -------
        Tensor[Bq, b]
        """
        n_queries, query_len, _ = weights.shape
        sim = (flat_queries @ rows.T).view(n_queries, query_len, -1, doc_len)
        best = sim.amax(dim=-1)  # [Bq, Lq, b]
        if self.relu:
            best = best.clamp_min(0)
        return (best * weights).sum(dim=1)

    def size_bytes(self) -> int:
        """Bytes of a compact layout: all vectors plus ``int64`` document offsets.

        Returns
        -------
        int
            ``num_vectors * D * itemsize + (num_docs + 1) * 8`` (``itemsize`` of
            ``dtype``, whether the vectors are held in memory or read from a store);
            0 before :meth:`build`. The padding of the in-memory blocks is not counted.
        """
        if not self._ids:
            return 0
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        return self._num_vectors * self._dim * itemsize + (len(self._ids) + 1) * 8

    @property
    def num_vectors(self) -> int:
        """Total number of indexed document vectors."""
        return self._num_vectors


def _merge_top_k(
    best_scores: Tensor, best_positions: Tensor, scores: Tensor, positions: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """The top ``k`` of a running top-k and one block's scores.

    Parameters
    ----------
    best_scores, best_positions : Tensor[Bq, k']
        The running top-k so far (``k' <= k``).
    scores : Tensor[Bq, b]
        The block's scores.
    positions : Tensor[b]
        The block's document positions.
    k : int

    Returns
    -------
    scores, positions : Tensor[Bq, min(k, k' + b)]
        Ordered by score, descending, then position, ascending (a total order, so the
        result does not depend on the order the blocks come in).
    """
    cand_scores = torch.cat([best_scores, scores], dim=1)
    cand_positions = torch.cat([best_positions, positions[None, :].expand(len(scores), -1)], dim=1)
    # Lexicographic (score desc, position asc): order by position, then a stable
    # sort by score keeps that order among ties (torch.topk does not promise one).
    by_position = torch.argsort(cand_positions, dim=1)
    cand_scores = cand_scores.gather(1, by_position)
    cand_positions = cand_positions.gather(1, by_position)
    keep = torch.sort(cand_scores, dim=1, descending=True, stable=True).indices[:, :k]
    return cand_scores.gather(1, keep), cand_positions.gather(1, keep)
