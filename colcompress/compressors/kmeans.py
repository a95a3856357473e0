"""CRISP: k-means over each sequence's token vectors, inside training and at index time.

CRISP (Veneroso et al. 2025) clusters the token vectors of every query and every
document in the forward pass and represents the sequence by its cluster centroids.
Cluster *assignments* are computed without gradient; the *centroids* are means of
their member vectors, so the retrieval loss trains the encoder to produce
clusterable vectors. The same clustering runs at index and query time. With
``posthoc=True`` the model trains on uncompressed vectors and the clustering runs
only at index/query time: the post-hoc k-means baseline.

:func:`batched_kmeans` is the batched, masked k-means used by both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import rank_in_mask
from colcompress.compressors.hashing import document_keys, uniform
from colcompress.models.states import TokenStates

INITS = ("kmeans++", "farthest")
SIMILARITIES = ("cosine", "l2")
MODES = ("fixed", "relative")


@dataclass
class KMeansResult:
    """Output of :func:`batched_kmeans`.

    Attributes
    ----------
    centroids : Tensor[B, K, D]
        Mean of each cluster's members (differentiable w.r.t. the input vectors);
        zero rows for unused cluster slots.
    mask : Tensor[B, K]
        bool, True for the ``k_b`` real clusters of sequence b.
    assign : Tensor[B, N]
        long cluster index of every token, -1 on padding.
    """

    centroids: Tensor
    mask: Tensor
    assign: Tensor


def _similarity(x: Tensor, c: Tensor, similarity: str) -> Tensor:
    """Assignment score of every token to every centroid, ``Tensor[B, N, K]``.

    ``cosine``: ``<x, c / |c|>`` (spherical k-means; the argmax is the most
    cosine-similar centroid). ``l2``: ``2 <x, c> - |c|^2``, whose argmax is the
    nearest centroid in squared Euclidean distance (Lloyd's k-means).
    """
    if similarity == "cosine":
        return x @ F.normalize(c, dim=-1).transpose(1, 2)
    return 2 * x @ c.transpose(1, 2) - (c * c).sum(-1)[:, None, :]


def _distance(x: Tensor, c: Tensor, similarity: str) -> Tensor:
    """Distance of every token ``x[B, N, D]`` to one point per row ``c[B, D]``: ``[B, N]``."""
    if similarity == "cosine":
        return 1 - (F.normalize(x, dim=-1) * F.normalize(c, dim=-1)[:, None, :]).sum(-1)
    return ((x - c[:, None, :]) ** 2).sum(-1)


def _draw(weights: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: for each row the index whose weight interval holds
    ``u * total``. Only the row's own weights and ``u`` matter (not the batch, not
    trailing padding)."""
    cdf = weights.cumsum(1)
    idx = (cdf <= u[:, None] * cdf[:, -1:]).sum(1)
    return idx.clamp_max(weights.shape[1] - 1)


def _init_centers(
    x: Tensor, valid: Tensor, num: int, init: str, similarity: str, keys: Tensor
) -> Tensor:
    """Pick ``num`` distinct seed tokens per row (k-means++ or farthest point).

    The first seed is drawn uniformly among the real tokens; k-means++ draws each
    next one with probability proportional to its distance to the nearest seed,
    farthest point takes the farthest token. Draw ``j`` of row b is
    ``uniform(keys[b], j)`` (:mod:`colcompress.compressors.hashing`), so a row's
    seeds depend on its own tokens and key only, whatever batch it is in. Rows with
    fewer real tokens than ``num`` get arbitrary extra seeds (their slots are unused).

    Returns
    -------
    Tensor[B, num]
        long token indices.
    """
    batch, n, _ = x.shape
    rows = torch.arange(batch, device=x.device)
    fallback = torch.ones(batch, n, device=x.device)
    chosen = torch.zeros_like(valid)
    seeds = torch.zeros(batch, num, dtype=torch.long, device=x.device)
    dist = torch.full((batch, n), float("inf"), device=x.device)
    for j in range(num):
        if j == 0:
            weights = valid.float()
        elif init == "kmeans++":
            weights = torch.where(valid, dist.clamp_min(0), torch.zeros_like(dist))
            # all remaining tokens coincide with seeds: any unchosen real token
            weights = torch.where(
                weights.sum(1, keepdim=True) > 0, weights, (valid & ~chosen).float()
            )
        else:
            score = dist.masked_fill(~valid | chosen, float("-inf"))
            idx = score.argmax(1)
            weights = None
        if weights is not None:
            weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, fallback)
            step = torch.tensor([j], device=x.device)
            idx = _draw(weights.double(), uniform(keys, step)[:, 0].double())
        seeds[:, j] = idx
        chosen[rows, idx] = True
        dist = torch.minimum(dist, _distance(x, x[rows, idx], similarity))
    return seeds


def _fill_empty(
    assign: Tensor, own: Tensor, valid: Tensor, slots: Tensor, num: int
) -> tuple[Tensor, Tensor]:
    """Give every empty cluster slot the worst-fitting token of a shared cluster.

    One token per row and pass: the real token with the lowest score to its own
    centroid among clusters with at least two members moves to the first empty
    slot. A pass never empties another cluster, so ``num`` passes suffice.

    Parameters
    ----------
    assign : Tensor[B, N]
    own : Tensor[B, N]
        Score of every token to its assigned centroid.
    valid : Tensor[B, N]
    slots : Tensor[B, K]
        bool, cluster slots in use.
    num : int
        K.

    Returns
    -------
    assign, one_hot : Tensor[B, N], Tensor[B, N, K]
    """
    rows = torch.arange(assign.shape[0], device=assign.device)
    for _ in range(num + 1):
        one_hot = F.one_hot(assign, num).float() * valid[..., None]
        counts = one_hot.sum(1)  # [B, K]
        empty = (counts == 0) & slots
        need = empty.any(1)
        if not bool(need.any()):
            return assign, one_hot
        target = empty.float().argmax(1)
        shared = valid & (counts.gather(1, assign) >= 2)
        worst = own.masked_fill(~shared, float("inf")).argmin(1)
        assign = assign.clone()
        assign[rows[need], worst[need]] = target[need]
        own = own.clone()
        own[rows[need], worst[need]] = float("inf")
    raise RuntimeError("k-means could not fill its empty clusters (more clusters than tokens?)")


def batched_kmeans(
    x: Tensor,
    mask: Tensor,
    k: Tensor,
    iters: int = 10,
    init: str = "kmeans++",
    similarity: str = "cosine",
    seed: int = 0,
    keys: Tensor | None = None,
) -> KMeansResult:
    """k-means on every sequence of a batch at once, with a per-sequence k.

    Deterministic given ``seed`` (and ``keys``), sequence by sequence: a sequence's
    seeding draws depend on its key only (see :func:`_init_centers`), followed by
    exactly ``iters`` assignment/update steps, so its clusters do not change with
    the other sequences of the batch or the padding width. Empty clusters are
    refilled with the worst-fitting token (:func:`_fill_empty`), so every sequence
    gets exactly ``min(k_b, n_b)`` non-empty clusters; a sequence with ``n_b <= k_b``
    real tokens keeps each token as its own cluster (centroid = the token itself).

    Assignments carry no gradient; the returned centroids are means of their
    members and are differentiable w.r.t. ``x``.

    Parameters
    ----------
    x : Tensor[B, N, D]
    mask : Tensor[B, N]
        True for real tokens.
    k : Tensor[B]
        Clusters wanted per sequence (>= 1).
    iters : int
        Assignment/update steps (>= 1).
    init : {"kmeans++", "farthest"}
    similarity : {"cosine", "l2"}
        Assignment rule, see :func:`_similarity`.
    seed : int
        Key of every sequence when ``keys`` is None.
    keys : Tensor[B] or None
        Per-sequence keys (e.g. :func:`~colcompress.compressors.hashing.document_keys`
        of the token ids), so different sequences draw differently.

    Returns
    -------
    KMeansResult
        ``K = max_b min(k_b, n_b)`` cluster slots (at least 1).
    """
    if init not in INITS:
        raise ValueError(f"k-means init must be one of {INITS}, got {init!r}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"k-means similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if iters < 1:
        raise ValueError(f"k-means iters must be >= 1, got {iters}")
    valid = mask.bool()
    ranks, lengths = rank_in_mask(valid), valid.sum(1)
    k_eff = torch.minimum(k.to(lengths.device).long(), lengths)
    num = max(int(k_eff.max()) if k_eff.numel() else 0, 1)
    slots = torch.arange(num, device=x.device)[None, :] < k_eff[:, None]
    short = lengths <= k_eff  # every token is its own cluster

    with torch.no_grad():
        xd = x.detach().float()
        if keys is None:
            keys = torch.full((x.shape[0],), seed, dtype=torch.long, device=x.device)
        seeds = _init_centers(xd, valid, num, init, similarity, keys.to(x.device))
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        centroids = xd[rows, seeds]  # [B, K, D]
        for step in range(iters):
            scores = _similarity(xd, centroids, similarity)
            scores = scores.masked_fill(~slots[:, None, :], float("-inf"))
            assign = scores.argmax(-1)
            own = scores.gather(-1, assign[..., None]).squeeze(-1)
            assign, one_hot = _fill_empty(assign, own, valid, slots, num)
            if step < iters - 1:
                counts = one_hot.sum(1).clamp(min=1)
                centroids = one_hot.transpose(1, 2) @ xd / counts[..., None]
        assign = torch.where(short[:, None], ranks.clamp(min=0), assign)
        assign = assign.masked_fill(~valid, 0)
        one_hot = F.one_hot(assign, num).to(x.dtype) * valid[..., None].to(x.dtype)
        counts = one_hot.sum(1)  # [B, K]

    centroids = one_hot.transpose(1, 2) @ x / counts.clamp(min=1)[..., None]
    return KMeansResult(centroids, counts > 0, assign.masked_fill(~valid, -1))


class CrispKMeans(Compressor):
    """CRISP clustering compressor (and, with ``posthoc=True``, post-hoc k-means).

    Sizing modes:

    - ``fixed``: ``C_q x C_d`` -- queries get ``query_clusters`` clusters, documents
      ``budget`` clusters (CRISP's C4x8 is ``query_clusters=4, budget=8``).
    - ``relative``: ``ceil(n / ratio)`` clusters for an n-token query or document
      (CRISP's R2, R4); ``budget``, when set, caps the document count (the
      contract's "at most budget vectors"), so run ``R_r`` with ``budget=null``.

    A sequence with no more tokens than its cluster count keeps its tokens.

    Queries and documents go through the same ``forward``; the caller passes
    ``states.is_query`` selects the query cluster count.

    Parameters
    ----------
    budget : int or None
        Fixed mode: document clusters ``C_d`` (required). Relative mode: cap or None.
    posthoc : bool
        False: CRISP (cluster inside training). True: post-hoc k-means.
    mode : {"fixed", "relative"}
    query_clusters : int
        ``C_q`` (fixed mode).
    ratio : float or None
        Tokens per cluster r (relative mode, >= 1).
    iters : int
        k-means assignment/update steps.
    init : {"kmeans++", "farthest"}
        Seeding; its draws depend only on the sequence's token ids and ``seed``.
    similarity : {"cosine", "l2"}
        Spherical (cosine to the mean direction) or Euclidean k-means.
    seed : int
    cluster_queries : bool
        Whether queries are clustered too (CRISP: yes); sets ``applies_to_queries``.
    """

    applies_to_queries = True

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = False,
        mode: str = "fixed",
        query_clusters: int = 4,
        ratio: float | None = None,
        iters: int = 10,
        init: str = "kmeans++",
        similarity: str = "cosine",
        seed: int = 0,
        cluster_queries: bool = True,
    ) -> None:
        super().__init__(budget=budget, posthoc=posthoc)
        if mode not in MODES:
            raise ValueError(f"compressor.mode must be one of {MODES}, got {mode!r}")
        if mode == "fixed":
            if budget is None:
                raise ValueError(
                    "CrispKMeans mode=fixed needs compressor.budget (document clusters C_d)"
                )
            if int(query_clusters) != query_clusters or query_clusters < 1:
                raise ValueError(
                    f"compressor.query_clusters must be a positive integer, got {query_clusters}"
                )
        elif ratio is None or not ratio >= 1:
            raise ValueError(
                f"CrispKMeans mode=relative needs compressor.ratio >= 1 (tokens per "
                f"cluster), got {ratio}"
            )
        if init not in INITS:
            raise ValueError(f"compressor.init must be one of {INITS}, got {init!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"compressor.similarity must be one of {SIMILARITIES}, got {similarity!r}"
            )
        if int(iters) != iters or iters < 1:
            raise ValueError(f"compressor.iters must be a positive integer, got {iters}")
        self.mode = mode
        self.query_clusters = int(query_clusters)
        self.ratio = ratio
        self.iters = int(iters)
        self.init = init
        self.similarity = similarity
        self.seed = int(seed)
        self.applies_to_queries = bool(cluster_queries)

    def cluster_counts(self, lengths: Tensor, query: bool) -> Tensor:
        """Clusters wanted per sequence, ``Tensor[B]`` (before capping at its length).

        Parameters
        ----------
        lengths : Tensor[B]
            Real tokens per sequence.
        query : bool
            Whether the sequences are queries.
        """
        if self.mode == "fixed":
            if query:
                return torch.full_like(lengths, self.query_clusters)
            if self.budget is None:
                raise ValueError(
                    "CrispKMeans mode=fixed needs a document budget (C_d); it was set to None"
                )
            return torch.full_like(lengths, self.budget)
        counts = torch.ceil(lengths.double() / self.ratio).long().clamp(min=1)
        if not query and self.budget is not None:
            counts = counts.clamp(max=self.budget)
        return counts

    def forward(
        self,
        vectors: Tensor,
        states: TokenStates,
        extra_vectors: Tensor | None = None,
    ) -> Compressed:
        """Cluster every sequence and return its centroids.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
        states : TokenStates
        extra_vectors : None
            Unused (CRISP appends no tokens).

        Returns
        -------
        Compressed
            ``vectors[B, K, D]`` centroids (un-normalised means; the model
            renormalises), ``mask[B, K]``.
        """
        mask = states.mask.bool()
        k = self.cluster_counts(mask.sum(1), states.is_query)
        keys = document_keys(states.input_ids, mask, self.seed)
        result = batched_kmeans(
            vectors, mask, k, self.iters, self.init, self.similarity, self.seed, keys
        )
        return Compressed(result.centroids, result.mask)
