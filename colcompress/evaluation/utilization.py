"""Index utilization analytics (Qin et al. 2026, Section 6.5).

How evenly does late interaction use the vectors of a (compressed) index? Relevant
(query, document) pairs stream through batched MaxSim; the accumulator records which
document *position* (output slot) wins each query token, how strongly, how much of the
index ever wins, and how similar the positions of a document are to each other, and
summarises the per-position matching strength by its coefficient of variation and Gini
coefficient. Their correlation with retrieval quality across runs (Table 8, Figure 4)
is :mod:`colcompress.analysis.correlation`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colcompress.index.store import VectorStore
from colcompress.padding import pad_stack

PREQUANTISATION_NOTE = (
    "computed on the exact document vectors that were indexed, before any index "
    "quantisation (e.g. FastPlaid residual compression)"
)
DEFAULT_SIMILARITY_POSITIONS = 32
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
    """Coefficient of variation ``CV = sigma / mu x 100`` in percent (lower: more even).

    sigma is the population standard deviation (``ddof=0``, as in the population Gini),
    so n equal values have CV 0 and all mass on one of n positions ``100 sqrt(n - 1)``.

    Parameters
    ----------
    x : array-like of shape [n]
        Non-empty, finite values with a non-zero mean.

    Raises
    ------
    ValueError
        On an empty or non-finite input, or a zero mean.
    """
    arr = _as_float_array(x, "coefficient_of_variation")
    mean = arr.mean()
    if mean == 0:
        raise ValueError("coefficient_of_variation is undefined for values with mean 0")
    return float(arr.std(ddof=0) / mean * 100.0)


def gini(x: Sequence[float] | np.ndarray | Tensor) -> float:
    """Gini coefficient ``G = 2 sum_i i x_(i) / (n sum_i x_i) - (n + 1) / n`` (lower: more even).

    ``x_(1) <= ... <= x_(n)`` sorted ascending; G is 0 for equal values and
    ``(n - 1) / n`` when all mass is on one position.

    Parameters
    ----------
    x : array-like of shape [n]
        Non-empty, finite, non-negative values with a positive sum.

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
    """Utilization of one index (see :class:`UtilizationAccumulator`), JSON-ready.

    Attributes
    ----------
    strength, strength_sum : list of float, length P
        Normalised per-position matching strength; un-normalised sum of won MaxSim values.
    wins, position_counts : list of int, length P
        Query tokens each position won; relevant pairs whose document fills the position.
    cv, gini : float or None
        Of ``strength``; None when undefined (no match records, a non-positive mean for
        CV, a negative strength for Gini).
    num_pairs, num_match_records : int
        Relevant pairs fed; (pair, query token) records that found a vector to match.
    index_usage : float or None
        ``won_vectors / total_indexed_vectors`` (None without document ids and total).
    won_vectors, total_indexed_vectors : int or None
        Distinct (document, position) vectors that won a MaxSim; vectors in the index.
    similarity : list of list of (float or None), shape [S, S], or None
        Mean within-document cosine similarity of positions i and j (None cells: no
        document has both; None: no documents fed to ``update_documents``).
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
    note: str = PREQUANTISATION_NOTE

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
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{source}: utilization record lacks keys {missing}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def summary(self) -> dict[str, float | int]:
        """Scalar values for a logger summary, as ``utilization/<name>`` (undefined left out)."""
        names = ("cv", "gini", "index_usage", "won_vectors", "num_positions", "num_pairs")
        values = {name: getattr(self, name) for name in names}
        return {f"utilization/{k}": v for k, v in values.items() if v is not None}


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


def _used_length(mask: Tensor) -> int:
    """One past the last slot of ``mask[B, M]`` any row uses (0: none)."""
    used = mask.bool().any(0).nonzero()
    return int(used[-1]) + 1 if used.numel() else 0


class UtilizationAccumulator:
    r"""Stream relevant pairs and documents; accumulate utilization statistics.

    **Matching strength** (Section 6.5: "sum the maximum similarity scores across all
    relevant query-document pairs and normalize by the total number of match records
    at that query position"; Figure 3: "... averaged over query positions"). For a
    relevant pair ``(q, d)`` in ``R`` and an unmasked query token ``i``, the winning
    position is ``j*(q, d, i) = argmax_j <q_i, d_j>`` over the unmasked document
    vectors, with MaxSim value ``s(q, d, i) = max_j <q_i, d_j>`` (clamped at 0 under
    ``relu``)::

        S[i, j] = sum_{(q,d) in R} [j*(q, d, i) = j] s(q, d, i)    # strength_sum per (i, j)
        N[i]    = #{(q, d) in R : q has a token at i, d has a vector}  # match records at i
        strength[j] = 1/|I| sum_{i in I} S[i, j] / N[i],  I = {i : N[i] > 0}

    ``strength[j]`` is the MaxSim mass position j takes per query token, every query
    position weighing the same; ``sum_j strength[j]`` is the mean per-token MaxSim.
    CV and Gini cover all P positions, those that never win (the under-used) included.

    **Positions** are slot indices of ``docs[B, M, D]``: P is ``num_positions`` (a
    fixed budget) or grows to the last unmasked slot of a relevant document.
    **Index usage** is the share of ``total_indexed_vectors`` that win at least one
    MaxSim, counted by (document id, position); it needs ``doc_ids`` on every
    :meth:`update`. **Similarity** ``sim[i, j]`` is the mean ``cos(d_i, d_j)`` over the
    documents fed to :meth:`update_documents` with vectors at both i and j (i, j < S).

    Batches are computed on the inputs' device (float32), running sums kept in
    float64/int64 on the CPU. Feed the exact vectors that were indexed, before
    quantisation.

    Parameters
    ----------
    num_positions : int or None
        P, fixed number of document positions (e.g. the budget), or None to grow.
    similarity_positions : int or None
        S, size of the similarity matrix; None: ``num_positions``, else grow.
    relu : bool
        ColBERT_P scoring: MaxSim values clamped at 0 (winners are the raw argmax), as
        ``colcompress.models.scoring.maxsim(relu=True)``.
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
        self.similarity_positions = similarity_positions or num_positions
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
        last, fixed = _used_length(doc_mask), self.num_positions
        if fixed is not None and last > fixed:
            raise ValueError(f"docs have a vector at position {last - 1} but num_positions={fixed}")
        m = last if fixed is None else min(doc_mask.shape[1], fixed)  # slots kept
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
        p = fixed or m
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
            keys = torch.unique(((index_t[:, None] << _POSITION_BITS) | winner)[valid]).cpu()
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
        m = _used_length(doc_mask) if s is None else min(s, _used_length(doc_mask))
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

        Raises
        ------
        ValueError
            If ``total_indexed_vectors`` is smaller than the number of winning vectors.
        """
        records = self._records.to(torch.float64)
        seen = records > 0
        if seen.any():
            strength = (self._strength[seen] / records[seen, None]).mean(0)  # over I
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
                [float(v) if c > 0 else None for v, c in zip(row, crow)]
                for row, crow in zip(mean.tolist(), self._sim_count.tolist())
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
        :class:`~colcompress.index.store.VectorStore` the index was built from; the row
        index is the position, the total row count the denominator of index usage.
    pairs : iterable of (query index, document index)
        Relevant pairs (qrels > 0), indices into the two sequences.
    num_positions, similarity_positions, relu
        See :class:`UtilizationAccumulator`.
    similarity_sample : int, optional
        Documents (a fixed-seed random sample) for the similarity matrix (default all).
    batch_size : int
        Pairs (and documents) per batched MaxSim.
    device : torch.device or str
        Where the batched MaxSim runs.
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
        chunk = order[start : start + batch_size]
        acc.update_documents(*pad_stack([doc_vectors[i].to(device) for i in chunk]))
    if isinstance(doc_vectors, VectorStore):
        return acc.compute(total_indexed_vectors=doc_vectors.num_vectors)
    return acc.compute(total_indexed_vectors=sum(v.shape[0] for v in doc_vectors))
