"""Index utilization analytics (Qin et al. 2026, Section 6.5).

How evenly does late interaction use the vectors of a (compressed) index? This module
streams relevant (query, document) pairs through batched MaxSim and records which
document *position* (output slot) wins each query token, how strongly, how much of the
index ever wins, and how similar the positions of a document are to each other; then
summarises the per-position matching strength with the coefficient of variation and
the Gini coefficient. Correlating those with retrieval quality across runs (the
paper's Table 8 and Figure 4) is :mod:`colcompress.analysis.correlation`.

Typical use by an evaluator::

    acc = UtilizationAccumulator(num_positions=budget, similarity_positions=32)
    for q, qm, d, dm, ids in relevant_pair_batches:      # exact, pre-quantisation vectors
        acc.update(q, qm, d, dm, doc_ids=ids)
    for d, dm in indexed_document_batches:               # all indexed docs, or a sample
        acc.update_documents(d, dm)
    stats = acc.compute(total_indexed_vectors=index.num_vectors)
    results["utilization"] = stats.to_dict()
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colcompress.evaluation.plots import plot_similarity, plot_strength
from colcompress.index.store import VectorStore
from colcompress.padding import pad_stack

if TYPE_CHECKING:
    from colcompress.data.beir import BeirData
    from colcompress.evaluation.encode import Encoded
    from colcompress.models.colbert import ColBERT

PREQUANTISATION_NOTE = (
    "computed on the exact document vectors that were indexed, before any index "
    "quantisation (e.g. FastPlaid residual compression)"
)

_POSITION_BITS = 32  # (document, position) identities are packed as doc << 32 | position


def _as_float_array(x: Sequence[float] | np.ndarray | Tensor, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} needs at least one value, got an empty input")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} needs finite values, got {arr.tolist()}")
    return arr


def coefficient_of_variation(x: Sequence[float] | np.ndarray | Tensor) -> float:
    """Coefficient of variation ``CV = sigma / mu x 100`` (in percent).

    The paper writes ``CV = sigma / mu x 100`` without naming the estimator; this uses
    the *population* standard deviation (``ddof=0``), the same convention as the
    population Gini coefficient, so a vector of n equal values has CV 0 and a vector
    with all mass on one of n positions has CV ``100 sqrt(n - 1)``.

    Parameters
    ----------
    x : array-like of shape [n]
        Non-empty, finite values with a non-zero mean (per-position matching strength).

    Returns
    -------
    float
        Lower is more even.

    Raises
    ------
    ValueError
        On an empty or non-finite input, or a zero mean (CV undefined).
    """
    arr = _as_float_array(x, "coefficient_of_variation")
    mean = arr.mean()
    if mean == 0:
        raise ValueError("coefficient_of_variation is undefined for values with mean 0")
    return float(arr.std(ddof=0) / mean * 100.0)


def gini(x: Sequence[float] | np.ndarray | Tensor) -> float:
    """Gini coefficient ``G = 2 sum_i i x_(i) / (n sum_i x_i) - (n + 1) / n``.

    ``x_(1) <= ... <= x_(n)`` are the values sorted ascending, ``i`` runs from 1 to n.
    ``G = 0`` for equal values; ``G = (n - 1) / n`` when all mass is on one position.

    Parameters
    ----------
    x : array-like of shape [n]
        Non-empty, finite, non-negative values with a positive sum.

    Returns
    -------
    float
        In ``[0, (n - 1) / n]``; lower is more even.

    Raises
    ------
    ValueError
        On an empty, non-finite or negative input, or a zero sum.
    """
    arr = np.sort(_as_float_array(x, "gini"))
    if arr[0] < 0:
        raise ValueError(f"gini needs non-negative values, got minimum {arr[0]}")
    total = arr.sum()
    if total == 0:
        raise ValueError("gini is undefined for values that sum to 0")
    n = arr.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * (ranks * arr).sum() / (n * total) - (n + 1) / n)


@dataclass
class UtilizationStats:
    """Utilization of one index, JSON-ready through :meth:`to_dict`.

    Attributes
    ----------
    strength : list of float, length P
        Normalised per-position matching strength (see :class:`UtilizationAccumulator`).
    strength_sum : list of float, length P
        Un-normalised sum of MaxSim values won by each position over all query tokens.
    wins : list of int, length P
        Number of query tokens whose MaxSim each position won.
    position_counts : list of int, length P
        Number of relevant pairs whose document has a (non-masked) vector at the position.
    cv : float or None
        :func:`coefficient_of_variation` of ``strength``; None when undefined (no
        match records, or a non-positive mean).
    gini : float or None
        :func:`gini` of ``strength``; None when undefined (no match records, or a
        negative strength).
    num_pairs : int
        Relevant (query, document) pairs fed.
    num_match_records : int
        (pair, query token) records that found a document vector to match.
    index_usage : float or None
        ``won_vectors / total_indexed_vectors``; None unless document ids and the
        total were given.
    won_vectors : int or None
        Distinct (document, position) vectors that won at least one MaxSim.
    total_indexed_vectors : int or None
        Number of vectors in the index.
    similarity : list of list of (float or None), shape [S, S], or None
        Mean within-document cosine similarity between positions i and j over the
        documents that have both; None cells where no document has both; None when
        no documents were fed to ``update_documents``.
    similarity_documents : int
        Documents fed to ``update_documents``.
    note : str
        Which vectors were measured (pre-quantisation).
    """

    strength: list[float]
    strength_sum: list[float]
    wins: list[int]
    position_counts: list[int]
    cv: float | None
    gini: float | None
    num_pairs: int
    num_match_records: int
    index_usage: float | None = None
    won_vectors: int | None = None
    total_indexed_vectors: int | None = None
    similarity: list[list[float | None]] | None = None
    similarity_documents: int = 0
    note: str = field(default=PREQUANTISATION_NOTE)

    @property
    def num_positions(self) -> int:
        """P, the number of positions with a strength value."""
        return len(self.strength)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (lists, ints, floats, None; no NaN)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "utilization") -> UtilizationStats:
        """Rebuild from :meth:`to_dict` output (e.g. ``results.json["utilization"]``).

        Raises
        ------
        ValueError
            Naming ``source`` and the missing keys when required fields are absent.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        required = {"strength", "strength_sum", "wins", "position_counts", "cv", "gini"}
        required |= {"num_pairs", "num_match_records"}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{source}: utilization record lacks keys {missing}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self, prefix: str = "utilization/") -> dict[str, float | int]:
        """Scalar values for a logger summary (undefined values left out)."""
        values = {
            "cv": self.cv,
            "gini": self.gini,
            "index_usage": self.index_usage,
            "won_vectors": self.won_vectors,
            "num_positions": self.num_positions,
            "num_pairs": self.num_pairs,
        }
        return {prefix + k: v for k, v in values.items() if v is not None}


def _grow(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Zero-pad ``t`` to at least ``shape`` (never shrinks)."""
    target = tuple(max(a, b) for a, b in zip(t.shape, shape, strict=True))
    if target == tuple(t.shape):
        return t
    out = torch.zeros(target, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


def _check_batch(vectors: Tensor, mask: Tensor, what: str) -> None:
    if vectors.dim() != 3:
        raise ValueError(f"{what} must be [B, L, D], got shape {tuple(vectors.shape)}")
    if mask.shape != vectors.shape[:2]:
        raise ValueError(
            f"{what} mask must be [B, L] = {tuple(vectors.shape[:2])}, got {tuple(mask.shape)}"
        )


class UtilizationAccumulator:
    r"""Stream relevant pairs and documents; accumulate utilization statistics.

    **Matching strength** (Section 6.5: "sum the maximum similarity scores across all
    relevant query-document pairs and normalize by the total number of match records
    at that query position"; Figure 3: "... averaged over query positions"). For a
    relevant pair ``(q, d)`` and an unmasked query token at position ``i``, the winning
    document position is ``j*(q, d, i) = argmax_j <q_i, d_j>`` over the unmasked
    document vectors, and its MaxSim value is ``s(q, d, i) = max_j <q_i, d_j>``
    (clamped at 0 under ``relu``). With ``R`` the relevant pairs::

        S[i, j] = sum_{(q,d) in R} [j*(q, d, i) = j] s(q, d, i)    # strength_sum per (i, j)
        N[i]    = #{(q, d) in R : q has a token at i, d has a vector}  # match records at i
        strength[j] = 1/|I| sum_{i in I} S[i, j] / N[i],  I = {i : N[i] > 0}

    So ``strength[j]`` is the mean MaxSim mass position j takes per query token,
    averaged over query positions (every query position weighs the same however many
    queries reach it), and ``sum_j strength[j]`` is the mean per-token MaxSim score.
    ``strength_sum[j] = sum_i S[i, j]`` and ``wins[j]`` (number of query tokens won)
    are kept un-normalised alongside. CV and Gini are computed on ``strength`` over all
    P positions, including those that never win (those are the under-used slots).

    **Positions** are output-slot indices in ``docs[B, M, D]``. With ``num_positions``
    fixed (a fixed budget), P is that number; with None, P grows to the largest
    unmasked slot seen in a relevant document (variable-length outputs, uncompressed).

    **Index usage** = distinct (document id, position) vectors that win at least one
    MaxSim over the pairs fed to :meth:`update`, divided by ``total_indexed_vectors``.
    Needs ``doc_ids`` on every :meth:`update` call. The same document in several pairs
    must be given the same vectors (they are the indexed ones).

    **Inter-position similarity**: ``sim[i, j]`` = mean over the documents fed to
    :meth:`update_documents` that have unmasked vectors at both i and j of
    ``cos(d_i, d_j)``, for the first S positions.

    All per-batch work is batched tensor algebra on the inputs' device (float32);
    running sums are float64/int64 on the CPU. Feed the exact vectors that were
    indexed, before quantisation.

    Parameters
    ----------
    num_positions : int or None
        P, fixed number of document positions (e.g. the budget), or None to grow.
    similarity_positions : int or None
        S, size of the similarity matrix (the first S positions); None: same as
        ``num_positions`` when fixed, otherwise grow with the documents seen.
    relu : bool
        ColBERT_P scoring: MaxSim values are clamped at 0 (winners are still the raw
        argmax), matching ``colcompress.models.scoring.maxsim(relu=True)``.
    """

    def __init__(
        self,
        num_positions: int | None = None,
        similarity_positions: int | None = None,
        relu: bool = False,
    ) -> None:
        for name, value in (
            ("num_positions", num_positions),
            ("similarity_positions", similarity_positions),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {value}")
        self.num_positions = num_positions
        self.similarity_positions = (
            similarity_positions if similarity_positions is not None else num_positions
        )
        self.relu = relu
        p = num_positions or 0
        s = self.similarity_positions or 0
        self._strength = torch.zeros(0, p, dtype=torch.float64)  # S[i, j]
        self._wins = torch.zeros(0, p, dtype=torch.int64)  # wins[i, j]
        self._records = torch.zeros(0, dtype=torch.int64)  # N[i]
        self._presence = torch.zeros(p, dtype=torch.int64)
        self._num_pairs = 0
        self._uses_ids: bool | None = None
        self._doc_index: dict[Hashable, int] = {}
        self._won_keys = torch.zeros(0, dtype=torch.int64)
        self._pending_keys: list[Tensor] = []
        self._pending_len = 0
        self._sim_sum = torch.zeros(s, s, dtype=torch.float64)
        self._sim_count = torch.zeros(s, s, dtype=torch.int64)
        self._sim_docs = 0

    def _positions_in(self, mask: Tensor) -> int:
        """Slots to keep from ``mask[B, M]``: up to the last unmasked one, or P when fixed."""
        used = mask.bool().any(0).nonzero()
        last = int(used[-1]) + 1 if used.numel() else 0
        if self.num_positions is None:
            return last
        if last > self.num_positions:
            raise ValueError(
                f"docs have a vector at position {last - 1} but num_positions={self.num_positions}"
            )
        return min(mask.shape[1], self.num_positions)

    @torch.no_grad()
    def update(
        self,
        queries: Tensor,
        query_mask: Tensor,
        docs: Tensor,
        doc_mask: Tensor,
        doc_ids: Sequence[Hashable] | None = None,
    ) -> None:
        """Add a batch of relevant pairs: query ``b`` with its relevant document ``b``.

        Parameters
        ----------
        queries : Tensor[B, Lq, D]
        query_mask : Tensor[B, Lq]
            True (or 1) for real query tokens.
        docs : Tensor[B, M, D]
            The indexed (pre-quantisation) document vectors; slot index = position.
        doc_mask : Tensor[B, M]
            True (or 1) for real vectors; masked slots never win.
        doc_ids : sequence of B hashables, optional
            Document ids, for index usage. Give them on every call or on none.

        Raises
        ------
        ValueError
            On mismatched shapes, a vector beyond ``num_positions``, or ``doc_ids``
            given on some calls only.
        """
        _check_batch(queries, query_mask, "queries")
        _check_batch(docs, doc_mask, "docs")
        if queries.shape[0] != docs.shape[0] or queries.shape[2] != docs.shape[2]:
            raise ValueError(
                f"queries {tuple(queries.shape)} and docs {tuple(docs.shape)} must share "
                "batch size B and dimension D (pairs are aligned)"
            )
        uses_ids = doc_ids is not None
        if self._uses_ids is not None and uses_ids != self._uses_ids:
            raise ValueError("doc_ids must be given on every update() call or on none")
        self._uses_ids = uses_ids
        if uses_ids and len(doc_ids) != docs.shape[0]:
            raise ValueError(f"doc_ids has {len(doc_ids)} ids for a batch of {docs.shape[0]}")
        batch, lq = query_mask.shape
        self._num_pairs += batch
        if batch == 0:
            return
        m = self._positions_in(doc_mask)
        if m == 0:  # no document vector in the batch: no match records
            return
        docs, dmask = docs[:, :m].float(), doc_mask[:, :m].bool()
        qmask = query_mask.bool()

        sim = torch.einsum("bid,bjd->bij", queries.float(), docs)  # [B, Lq, M]
        sim = sim.masked_fill(~dmask[:, None, :], -math.inf)
        value, winner = sim.max(dim=-1)  # [B, Lq]
        if self.relu:
            value = value.clamp_min(0)
        valid = qmask & dmask.any(-1, keepdim=True)  # [B, Lq] match records

        qpos = torch.arange(lq, device=winner.device).expand(batch, lq)
        flat = (qpos * m + winner)[valid]
        s_batch = torch.zeros(lq * m, dtype=torch.float32, device=sim.device)
        s_batch.index_add_(0, flat, value[valid])
        w_batch = torch.bincount(flat, minlength=lq * m)
        p = m if self.num_positions is None else self.num_positions
        self._strength = _grow(self._strength, (lq, p))
        self._wins = _grow(self._wins, (lq, p))
        self._records = _grow(self._records, (lq,))
        self._presence = _grow(self._presence, (p,))
        self._strength[:lq, :m] += s_batch.view(lq, m).to("cpu", torch.float64)
        self._wins[:lq, :m] += w_batch.view(lq, m).cpu()
        self._records[:lq] += valid.sum(0).cpu()
        self._presence[:m] += dmask.sum(0).cpu()

        if uses_ids:
            index = [self._doc_index.setdefault(i, len(self._doc_index)) for i in doc_ids]
            index_t = torch.tensor(index, dtype=torch.int64, device=winner.device)
            keys = (index_t[:, None] << _POSITION_BITS) | winner
            self._add_won_keys(torch.unique(keys[valid]).cpu())

    def _add_won_keys(self, keys: Tensor) -> None:
        self._pending_keys.append(keys)
        self._pending_len += keys.numel()
        if self._pending_len > max(1 << 20, self._won_keys.numel()):
            self._consolidate()

    def _consolidate(self) -> None:
        if self._pending_keys:
            self._won_keys = torch.unique(torch.cat([self._won_keys, *self._pending_keys]))
            self._pending_keys, self._pending_len = [], 0

    @torch.no_grad()
    def update_documents(self, docs: Tensor, doc_mask: Tensor) -> None:
        """Add indexed documents (or a sample) to the inter-position similarity.

        Parameters
        ----------
        docs : Tensor[B, M, D]
            Document vectors; they are L2-normalised here (cosine similarity).
        doc_mask : Tensor[B, M]
            True (or 1) for real vectors.
        """
        _check_batch(docs, doc_mask, "docs")
        self._sim_docs += docs.shape[0]
        s = self.similarity_positions
        used = doc_mask.bool().any(0).nonzero()
        m = int(used[-1]) + 1 if used.numel() else 0
        m = m if s is None else min(s, m)
        if s is None:
            self._sim_sum = _grow(self._sim_sum, (m, m))
            self._sim_count = _grow(self._sim_count, (m, m))
        unit = F.normalize(docs[:, :m].float(), dim=-1)
        mask = doc_mask[:, :m].bool()
        both = mask[:, :, None] & mask[:, None, :]  # [B, m, m]
        cos = torch.bmm(unit, unit.transpose(1, 2)).masked_fill(~both, 0)
        self._sim_sum[:m, :m] += cos.sum(0).to("cpu", torch.float64)
        self._sim_count[:m, :m] += both.sum(0).cpu()

    def compute(self, total_indexed_vectors: int | None = None) -> UtilizationStats:
        """Summarise everything fed so far (the accumulator stays usable).

        Parameters
        ----------
        total_indexed_vectors : int, optional
            Number of vectors in the whole index, the denominator of index usage.

        Returns
        -------
        UtilizationStats

        Raises
        ------
        ValueError
            If ``total_indexed_vectors`` is smaller than the number of winning vectors.
        """
        records = self._records.to(torch.float64)
        seen = records > 0
        if seen.any():
            per_qpos = self._strength[seen] / records[seen, None]  # [|I|, P]
            strength = per_qpos.mean(0)
        else:
            strength = torch.zeros(self._strength.shape[1], dtype=torch.float64)
        cv = g = None
        if strength.numel() and seen.any():
            if strength.mean() > 0:
                cv = coefficient_of_variation(strength)
            if strength.min() >= 0 and strength.sum() > 0:
                g = gini(strength)

        usage = won = None
        if self._uses_ids:
            self._consolidate()
            won = int(self._won_keys.numel())
            if total_indexed_vectors is not None:
                if total_indexed_vectors < won or total_indexed_vectors <= 0:
                    raise ValueError(
                        f"total_indexed_vectors={total_indexed_vectors} but {won} distinct "
                        "(document, position) vectors won a MaxSim"
                    )
                usage = won / total_indexed_vectors

        similarity = None
        if self._sim_docs:
            mean = self._sim_sum / self._sim_count.clamp_min(1)
            similarity = [
                [float(v) if c > 0 else None for v, c in zip(row, crow, strict=True)]
                for row, crow in zip(mean.tolist(), self._sim_count.tolist(), strict=True)
            ]
        return UtilizationStats(
            strength=strength.tolist(),
            strength_sum=self._strength.sum(0).tolist(),
            wins=self._wins.sum(0).tolist(),
            position_counts=self._presence.tolist(),
            cv=cv,
            gini=g,
            num_pairs=self._num_pairs,
            num_match_records=int(self._records.sum()),
            index_usage=usage,
            won_vectors=won,
            total_indexed_vectors=total_indexed_vectors,
            similarity=similarity,
            similarity_documents=self._sim_docs,
        )


DEFAULT_SIMILARITY_POSITIONS = 32


def utilization_from_vectors(
    query_vectors: Sequence[Tensor],
    doc_vectors: Sequence[Tensor],
    pairs: Iterable[tuple[int, int]],
    num_positions: int | None = None,
    similarity_positions: int | None = DEFAULT_SIMILARITY_POSITIONS,
    similarity_sample: int | None = None,
    relu: bool = False,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> UtilizationStats:
    """Utilization of an index given as per-document vector lists.

    Parameters
    ----------
    query_vectors : sequence of Tensor[l_q, D]
        Encoded queries, padding removed.
    doc_vectors : sequence of Tensor[m_d, D]
        Exactly the vectors handed to ``Index.build`` (pre-quantisation), or the
        :class:`~colcompress.index.store.VectorStore` the index was built from (read a
        document at a time); the row index is the position. The whole sequence is the
        index: its total row count is the denominator of index usage.
    pairs : iterable of (query index, document index)
        Relevant pairs (qrels > 0), indices into the two sequences.
    num_positions, similarity_positions, relu
        See :class:`UtilizationAccumulator`.
    similarity_sample : int, optional
        Use this many documents (a fixed-seed random sample) for the similarity
        matrix instead of all of them.
    batch_size : int
        Pairs (and documents) per batched MaxSim.
    device : torch.device or str
        Where the batched MaxSim runs.

    Returns
    -------
    UtilizationStats
    """
    if not doc_vectors:
        raise ValueError("utilization_from_vectors needs at least one document")
    acc = UtilizationAccumulator(num_positions, similarity_positions, relu)
    pairs = list(pairs)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        q, q_mask = pad_stack([query_vectors[qi].to(device) for qi, _ in chunk])
        d, d_mask = pad_stack([doc_vectors[di].to(device) for _, di in chunk])
        acc.update(q, q_mask, d, d_mask, doc_ids=[di for _, di in chunk])
    order = list(range(len(doc_vectors)))
    if similarity_sample is not None and similarity_sample < len(order):
        gen = torch.Generator().manual_seed(0)
        order = sorted(torch.randperm(len(order), generator=gen)[:similarity_sample].tolist())
    for start in range(0, len(order), batch_size):
        d, d_mask = pad_stack(
            [doc_vectors[i].to(device) for i in order[start : start + batch_size]]
        )
        acc.update_documents(d, d_mask)
    if isinstance(doc_vectors, VectorStore):
        total = doc_vectors.num_vectors
    else:
        total = sum(v.shape[0] for v in doc_vectors)
    return acc.compute(total_indexed_vectors=total)


class UtilizationAnalysis:
    """Analysis hook for ``evaluate_model(..., analyses=[UtilizationAnalysis(...)])``.

    Called as ``f(model, data, docs, queries)`` after the evaluation pass, with
    ``docs.vectors`` in ``list(data.corpus)`` order and ``queries.vectors`` in
    ``list(data.queries)`` order (as the evaluator encodes them). Relevant pairs are
    the qrels with relevance > 0. Positions are row indices of the indexed vectors
    (the compressor's output slots with masked slots removed). With a budget there
    are exactly ``budget`` positions (slots no relevant document fills count, with
    strength 0, against evenness); without one the number grows with the data. The
    similarity matrix covers the first ``similarity_positions`` positions (default:
    the compressor's budget, else 32).
    ColBERT_P scoring (``model.relu``) is followed.

    Parameters
    ----------
    similarity_positions : int, optional
    similarity_sample : int, optional
        Documents used for the similarity matrix (default all).
    batch_size : int
    device : torch.device or str
    output_dir : path, optional
        Also write ``utilization_strength.png`` and ``utilization_similarity.png`` here.
    """

    def __init__(
        self,
        similarity_positions: int | None = None,
        similarity_sample: int | None = None,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
        output_dir: str | os.PathLike | None = None,
    ) -> None:
        self.similarity_positions = similarity_positions
        self.similarity_sample = similarity_sample
        self.batch_size = batch_size
        self.device = device
        self.output_dir = None if output_dir is None else Path(output_dir)

    def __call__(
        self, model: ColBERT, data: BeirData, docs: Encoded, queries: Encoded
    ) -> dict[str, dict]:
        """Return ``{"utilization": UtilizationStats.to_dict()}`` (and write PNGs)."""
        doc_index = {d: i for i, d in enumerate(data.corpus)}
        pairs = [
            (qi, doc_index[d])
            for qi, q in enumerate(data.queries)
            for d, rel in data.qrels.get(q, {}).items()
            if rel > 0 and d in doc_index
        ]
        budget = getattr(model.compressor, "budget", None)
        if getattr(model.compressor, "budget_mode", "fixed") != "fixed":
            budget = None  # per-document budgets: positions grow with the documents
        stats = utilization_from_vectors(
            queries.vectors,
            docs.vectors,
            pairs,
            num_positions=budget,
            similarity_positions=self.similarity_positions
            or budget
            or DEFAULT_SIMILARITY_POSITIONS,
            similarity_sample=self.similarity_sample,
            relu=bool(getattr(model, "relu", False)),
            batch_size=self.batch_size,
            device=self.device,
        )
        if self.output_dir is not None:
            plot_strength(stats, self.output_dir / "utilization_strength.png")
            plot_similarity(stats, self.output_dir / "utilization_similarity.png")
        return {"utilization": stats.to_dict()}
