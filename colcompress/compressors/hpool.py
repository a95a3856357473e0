"""H-Pool: Ward agglomerative clustering of a document's token vectors.

Qin et al. 2026, "Multi-Vector Index Compression in Any Modality", section 4.3
(after the token pooling of Clavié et al. 2024 as implemented in PyLate).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import (
    cluster_means,
    compact,
    rank_in_mask,
    ward_clusters,
    ward_distances,
)
from colcompress.models.states import TokenStates

BACKENDS = ("auto", "scipy", "torch")


class HPool(Compressor):
    """Hierarchical (Ward) pooling of document token vectors.

    For every document: the first ``protected_tokens`` real tokens (e.g. [CLS])
    are kept as they are; the others are clustered with Ward linkage in the
    geometry of their cosine distances ``r_ij = 1 - cos(x_i, x_j)`` down to
    ``budget - protected_tokens`` clusters (or ``ceil(n / pool_factor)`` clusters),
    and each cluster becomes the mean of its members. A document with at most
    ``budget`` tokens keeps its tokens. Non-parametric: it works post-hoc on any
    trained model and during training, where gradients reach the vectors through
    the cluster means (the memberships are constants).

    The partition is the one of ``scipy.cluster.hierarchy.linkage(X, method="ward")``
    + ``fcluster(Z, k, criterion="maxclust")`` on the L2-normalised token vectors
    ``X``: Ward's merge cost is the paper's ``|A||B|/(|A|+|B|) ||mu_A - mu_B||^2``,
    and on unit vectors ``||x_i - x_j||^2 = 2 r_ij``, so merges follow the cosine
    distances (see :func:`ward_distances`). Handing Ward ``r`` itself as if it were
    Euclidean gives other partitions, and PyLate hands scipy the square matrix ``R``
    as ``n`` observation rows (Ward on the rows of ``R``); both differ from the
    paper's equations.

    Output vectors are ordered protected tokens first, then clusters in the order
    of their first token.

    Parameters
    ----------
    budget : int or None
        Maximum number of output vectors per document, protected tokens included.
        None only with ``pool_factor``.
    posthoc : bool
        Pool only at index time (training then sees every token vector).
    protected_tokens : int
        m', the number of leading real tokens kept unpooled.
    pool_factor : int or None
        Token-pooling mode: ``ceil(n_pool / pool_factor)`` clusters for the
        ``n_pool`` non-protected tokens, capped at ``budget - protected_tokens``
        when a budget is set.
    backend : {"auto", "scipy", "torch"}
        ``scipy``: scipy's linkage per document on CPU (fastest on CPU; it
        releases the GIL, so documents can be pooled from threads). ``torch``:
        batched Ward on the vectors' device (:func:`ward_clusters`), for GPUs.
        ``auto``: torch on CUDA, scipy otherwise. Both give the same partition.
    space : {"projected", "hidden"}
        Pool the projected, normalised token vectors, or the backbone's hidden
        states ``Z^(L)`` (the paper; the model then projects and normalises the
        pooled vectors). See :attr:`Compressor.space`.
    budget_mode : {"fixed", "proportional"}
        ``proportional``: each document's budget is proportional to its real
        tokens, at least ``protected_tokens + 1`` (:meth:`Compressor.doc_budgets`).
    mean_tokens : float or None
        The corpus's mean real tokens per document for ``proportional``; None
        fits it on the indexed corpus.
    """

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = False,
        protected_tokens: int = 1,
        pool_factor: int | None = None,
        backend: str = "auto",
        space: str = "projected",
        budget_mode: str = "fixed",
        mean_tokens: float | None = None,
    ) -> None:
        super().__init__(budget=budget, posthoc=posthoc)
        self.set_space(space)
        self.set_budget_mode(budget_mode, mean_tokens)
        if protected_tokens < 0:
            raise ValueError(f"compressor.protected_tokens must be >= 0, got {protected_tokens}")
        if pool_factor is not None and pool_factor < 1:
            raise ValueError(f"compressor.pool_factor must be >= 1 or null, got {pool_factor}")
        if backend not in BACKENDS:
            raise ValueError(f"compressor.backend must be one of {BACKENDS}, got {backend!r}")
        self.protected_tokens = protected_tokens
        self.pool_factor = pool_factor
        self.backend = backend
        self._check_budget(budget)

    def _check_budget(self, budget: int | None) -> None:
        if budget is None and self.pool_factor is None:
            raise ValueError("hpool needs compressor.budget or compressor.pool_factor, got neither")
        if budget is not None and budget <= self.protected_tokens:
            raise ValueError(
                f"hpool budget={budget} leaves no cluster next to "
                f"compressor.protected_tokens={self.protected_tokens}: the budget must be larger"
            )

    def check_budget(self, budget: int | None) -> None:
        """Any index-time budget above ``protected_tokens``."""
        self._check_budget(budget)
        super().check_budget(budget)

    def num_clusters(self, counts: Tensor, lengths: Tensor) -> Tensor:
        """Clusters to pool ``counts`` non-protected tokens into.

        Parameters
        ----------
        counts : Tensor[B]
            Long, tokens to pool per document.
        lengths : Tensor[B]
            Long, real tokens per document (protected ones included), which size
            proportional budgets.

        Returns
        -------
        Tensor[B]
            Long, at most ``counts``.
        """
        clusters = counts
        if self.pool_factor is not None:
            clusters = torch.div(
                counts + self.pool_factor - 1, self.pool_factor, rounding_mode="floor"
            )
        if self.budget is not None:
            budgets = self.doc_budgets(lengths, minimum=self.protected_tokens + 1)
            clusters = torch.minimum(clusters, budgets - self.protected_tokens)
        return torch.minimum(clusters, counts)

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Pool every document to at most ``budget`` vectors.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
            Projected token vectors.
        states : TokenStates
            Only ``mask[B, N]`` is used (True for real tokens, any layout).
        extra_vectors : None
            Unused.

        Returns
        -------
        Compressed
            ``vectors[B, M, D]`` with ``M = max_b (protected_b + clusters_b)``.
        """
        mask = states.mask.bool()
        rank = rank_in_mask(mask)
        protected = mask & (rank < self.protected_tokens)
        pool = mask & ~protected
        clusters = self.num_clusters(pool.sum(1), mask.sum(1))
        labels = self._labels(vectors, pool, clusters)
        kept = protected.sum(1, keepdim=True)
        assignment = torch.where(protected, rank, torch.where(pool, kept + labels, -1))
        width = max(int((kept[:, 0] + clusters).max()) if len(mask) else 0, 1)
        pooled, out_mask = cluster_means(vectors, assignment, width)
        return Compressed(pooled, out_mask)

    def _labels(self, vectors: Tensor, pool: Tensor, clusters: Tensor) -> Tensor:
        """Ward cluster index ``[B, N]`` (-1 outside ``pool``), clusters numbered by first token."""
        order, kept = compact(pool)  # cluster only the tokens to pool, moved to the front
        dim = vectors.shape[-1]
        distances = ward_distances(vectors.gather(1, order[..., None].expand(-1, -1, dim)))
        backend = self.backend
        if backend == "auto":
            backend = "torch" if vectors.is_cuda else "scipy"
        if backend == "torch":
            labels = ward_clusters(distances, kept, clusters)
        else:
            counts = kept.sum(1).tolist()
            labels = _scipy_ward(distances.cpu().numpy(), counts, clusters.tolist())
            labels = labels.to(vectors.device)
        return torch.full_like(pool, -1, dtype=torch.long).scatter(
            1, order, labels.masked_fill(~kept, -1)
        )


def _scipy_ward(distances: np.ndarray, counts: list[int], clusters: list[int]) -> Tensor:
    """Per-document scipy Ward + maxclust, clusters numbered by first token.

    Parameters
    ----------
    distances : ndarray[B, W, W]
        The first ``counts[b]`` rows and columns of document ``b`` are its tokens.
    counts : list of int
        Tokens per document.
    clusters : list of int
        Clusters per document.

    Returns
    -------
    Tensor[B, W]
        Long labels, -1 past each document's tokens.
    """
    labels = np.full(distances.shape[:2], -1, dtype=np.int64)
    for b, (n, k) in enumerate(zip(counts, clusters, strict=True)):
        if n <= k:
            labels[b, :n] = np.arange(n)
            continue
        condensed = squareform(distances[b, :n, :n], checks=False)
        flat = fcluster(linkage(condensed, method="ward"), k, criterion="maxclust")
        _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        labels[b, :n] = np.argsort(np.argsort(first))[inverse]  # renumber by first token
    return torch.from_numpy(labels)
