"""Exact MaxSim search over every stored document vector: the ground truth index."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from colcompress.index.base import Index, SearchResult
from colcompress.index.checks import validate_documents, validate_queries
from colcompress.padding import pad_stack


class FlatIndex(Index):
    """Exact (brute-force) MaxSim index: the ground truth approximate indexes are checked against.

    Documents are sorted by length and stored as padded chunks of ``batch_size``
    documents. Every stored row carries one extra coordinate: 0 for real vectors and
    the dtype's lowest value for padding; queries get a matching coordinate of 1, so
    one matrix product yields similarities in which padding can never win a max.
    Search scores every query block (queries grouped by length, so little query
    padding) against every chunk with batched tensor ops and keeps a running top-k
    per query.

    Parameters
    ----------
    batch_size : int
        Documents per stored chunk (the document block of one scoring step).
    dtype : torch.dtype
        Storage and scoring dtype of the vectors.
    query_batch_size : int
        Queries per scoring step. One step materialises a
        ``[query_batch_size, l_q, batch_size, m]`` similarity tensor.
    device : str or torch.device
        Where the chunks live and scoring runs.
    relu : bool
        Clamp each query token's maximum at 0 (ColBERT_P scoring).
    progress : bool
        Draw a tqdm bar (queries searched, ETA) during :meth:`search`.

    Notes
    -----
    Ties are broken deterministically: among equal scores the document given earlier to
    :meth:`build` ranks first.
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
        # (rows[b * L, D + 1] with the padding coordinate, document positions[b], L)
        self._chunks: list[tuple[Tensor, Tensor, int]] = []

    def build(self, doc_vectors: list[Tensor], ids: list[str]) -> None:
        """Store the documents, replacing anything built before.

        Parameters
        ----------
        doc_vectors : list of Tensor[m_i, D]
            One tensor per document, padding removed (``m_i >= 1``).
        ids : list of str
            Unique document ids aligned with ``doc_vectors``.
        """
        dim = validate_documents(doc_vectors, ids, "FlatIndex.build")
        lengths = torch.tensor([d.shape[0] for d in doc_vectors])
        order = torch.sort(lengths, stable=True).indices
        chunks = []
        for start in range(0, len(doc_vectors), self.batch_size):
            positions = order[start : start + self.batch_size]
            docs = [
                doc_vectors[p].detach().to(device=self.device, dtype=self.dtype)
                for p in positions.tolist()
            ]
            vectors, mask = pad_stack(docs)
            pad_coord = torch.zeros(mask.shape, dtype=self.dtype, device=self.device)
            pad_coord.masked_fill_(~mask, torch.finfo(self.dtype).min)
            rows = torch.cat([vectors, pad_coord[..., None]], dim=-1)
            chunks.append((rows.flatten(0, 1), positions.to(self.device), vectors.shape[1]))
        self._chunks = chunks
        self._ids = list(ids)
        self._dim = dim
        self._num_vectors = int(lengths.sum())

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
        if not self._chunks:
            raise RuntimeError("FlatIndex.search: the index is empty; call build() first")
        validate_queries(queries, self._dim, k, "FlatIndex.search")
        k = min(k, len(self._ids))
        ids: list[list[str]] = [[] for _ in queries]
        scores: list[list[float]] = [[] for _ in queries]
        # Longest first, so a block pads its queries to similar lengths.
        order = sorted(range(len(queries)), key=lambda i: -queries[i].shape[0])
        bar = tqdm(total=len(order), desc="search", unit="query", disable=not self.progress)
        for start in range(0, len(order), self.query_batch_size):
            members = order[start : start + self.query_batch_size]
            block = [queries[i].detach().to(device=self.device, dtype=self.dtype) for i in members]
            top_scores, top_positions = self._search_block(*pad_stack(block), k)
            for i, row_scores, row_positions in zip(
                members, top_scores.tolist(), top_positions.tolist(), strict=True
            ):
                ids[i] = [self._ids[p] for p in row_positions]
                scores[i] = row_scores
            bar.update(len(members))
        bar.close()
        return SearchResult(ids=ids, scores=scores)

    def _search_block(self, queries: Tensor, query_mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Exact top-k over every chunk for one padded block of queries.

        Parameters
        ----------
        queries : Tensor[Bq, Lq, D]
        query_mask : Tensor[Bq, Lq]
        k : int
            At most the number of documents.

        Returns
        -------
        scores : Tensor[Bq, k]
            Best first; ties ordered by ascending document position.
        positions : Tensor[Bq, k]
            Positions of the documents in the list given to :meth:`build`.
        """
        n_queries, query_len, _ = queries.shape
        ones = torch.ones(n_queries, query_len, 1, dtype=queries.dtype, device=queries.device)
        flat_queries = torch.cat([queries, ones], dim=-1).flatten(0, 1)  # [Bq * Lq, D + 1]
        weights = query_mask.to(queries.dtype)[..., None]  # [Bq, Lq, 1]
        score_dtype = torch.promote_types(self.dtype, torch.float32)
        best_scores = torch.empty(n_queries, 0, dtype=score_dtype, device=self.device)
        best_positions = torch.empty(n_queries, 0, dtype=torch.long, device=self.device)
        for rows, positions, doc_len in self._chunks:
            sim = (flat_queries @ rows.T).view(n_queries, query_len, -1, doc_len)
            best = sim.amax(dim=-1)  # [Bq, Lq, b]
            if self.relu:
                best = best.clamp_min(0)
            chunk_scores = (best * weights).sum(dim=1).to(score_dtype)  # [Bq, b]
            cand_scores = torch.cat([best_scores, chunk_scores], dim=1)
            cand_positions = torch.cat(
                [best_positions, positions[None, :].expand(n_queries, -1)], dim=1
            )
            # Lexicographic (score desc, position asc): order by position, then a stable
            # sort by score keeps that order among ties (torch.topk does not promise one).
            by_position = torch.argsort(cand_positions, dim=1)
            cand_scores = cand_scores.gather(1, by_position)
            cand_positions = cand_positions.gather(1, by_position)
            keep = torch.sort(cand_scores, dim=1, descending=True, stable=True).indices[:, :k]
            best_scores = cand_scores.gather(1, keep)
            best_positions = cand_positions.gather(1, keep)
        return best_scores, best_positions

    def size_bytes(self) -> int:
        """Bytes of a compact layout: all vectors plus ``int64`` document offsets.

        Returns
        -------
        int
            ``num_vectors * D * itemsize + (num_docs + 1) * 8``; 0 before :meth:`build`.
            The padding of the in-memory chunks is not counted.
        """
        if not self._chunks:
            return 0
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        return self._num_vectors * self._dim * itemsize + (len(self._ids) + 1) * 8

    @property
    def num_vectors(self) -> int:
        """Total number of indexed document vectors."""
        return self._num_vectors
