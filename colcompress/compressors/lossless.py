r"""Lossless token pruning by dominance (Zong & Piwowarski, SIGIR 2025).

Setting: ColBERT_P scoring, ``score(Q, D) = sum_q max_{d in D} [q . d]_+`` (model
options ``normalize: clip`` and ``scoring: maxsim_relu``). A document vector
``d`` is *dominated* by the others ``d_1 .. d_n`` when for every query vector q
either ``q . d <= 0`` or some ``d_i`` has ``q . d_i > q . d``. A dominated vector
never supplies a positive maximum, so dropping it changes no ColBERT_P score.

**The linear program (Farkas' lemma).** Let ``A = [d - d_1, ..., d - d_n]``
(``D x n``). The paper's LP asks for ``x >= 0`` with ``A x = -d``.

*Feasible => dominated.* Take q with ``q . d > 0``. Then
``sum_i x_i q . (d - d_i) = -q . d < 0``, so some ``x_i > 0`` has
``q . (d - d_i) < 0``, i.e. ``q . d_i > q . d``.

*Infeasible => not dominated.* Farkas: exactly one of (a) ``A x = b, x >= 0`` and
(b) ``A^T y >= 0, b^T y < 0`` is solvable. With ``b = -d``, (b) reads
``y . (d - d_i) >= 0`` for all i and ``y . d > 0``: the query ``q = y`` scores d
positively and no ``d_i`` beats it strictly.

So the paper's formulation is exact. Substituting ``lambda = x / (1 + sum x)``
gives the equivalent geometric form used here: d is dominated iff
``d = sum_i lambda_i d_i`` with ``lambda >= 0`` and ``sum lambda < 1`` (d lies
strictly inside ``conv({0, d_1, .., d_n})`` towards 0). We solve, for d against a
set K of other vectors,

    v* = min sum(lambda) + s   s.t.  sum_k lambda_k k + s d = d,  lambda, s >= 0,

which is always feasible (``s = 1``) and equals ``min(1, gauge_K(d))``. Its dual,
``max q . d`` s.t. ``q . k <= 1`` (k in K), ``q . d <= 1``, gives at ``v* = 1`` a
query q with ``q . d = 1 >= q . k``: a certificate that no vector of K beats d.
We declare "dominated" only when ``sum lambda <= 1 - margin`` and the solution
reproduces d to within ``1e-6`` (so on every query some other vector scores at least
``q . d / (1 - margin)`` up to that residual); the tests check this form against
the paper's LP.

**Removing many vectors at once is safe.** Let S be the vectors each dominated by
*all the others* of the document. For any q with ``m = max_{d in D} q . d > 0``
a maximiser ``d*`` cannot be in S (it would need a strictly larger ``q . d+``), so
``max_{D \ S} q . d = m``; if ``m <= 0`` both ReLU scores are 0. Hence all
dominated vectors are dropped together, each tested against the full document.

**Speed.** Exact dominance is invariant under an invertible linear map of the
document's span, so the LP runs in the span's coordinates (rank <= min(n, D)).
Cheap certificates first mark vectors that are the (positive) maximum along some
direction as kept (:func:`_separated`: Gilbert's algorithm finds such a direction for
every vector outside the hull of the others and 0, in a few matrix products); the LP
set K starts from those and grows by column generation: when a certificate q fails on
the full document, its best-scoring vector is provably non-dominated and joins K.
Each LP thus has ``|K| + 1`` columns and ``rank`` rows.

**Strategies.** ``lp``: exact (lossless). ``lp_svd``: the paper's approximate
variant, the same test in the document's top singular subspace (``svd_mode``
``cumulative``: smallest rank whose singular values reach ``svd_threshold`` of
their sum, as in the authors' code; ``absolute``: singular values above
``svd_threshold``). ``norm``: drop vectors with norm below ``norm_threshold``
(lossy). A ``norm_threshold`` with an LP strategy prunes by norm first.

With L2-normalised vectors nothing is ever dominated (each unit vector is the
unique maximum in its own direction): use ``normalize: clip`` and the
regularizers. Pruning is exact only under ReLU scoring (``maxsim_relu``).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import linprog
from torch import Tensor

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.prune import select_tokens, top_scoring
from colcompress.models.states import TokenStates

try:  # small per-document matrices: BLAS threads only add contention
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

STRATEGIES = ("lp", "lp_svd", "norm")
SVD_MODES = ("cumulative", "absolute")
_RESIDUAL_TOL = 1e-6
_BLOCK_NONZEROS = 100_000  # dense entries per stacked LP call
_SEPARATION_STEPS = 100  # Gilbert iterations per vector before the LP decides it
_POOLS: dict[int, ProcessPoolExecutor] = {}


def reduce_dimension(x: np.ndarray, svd_mode: str | None, threshold: float = 0.0) -> np.ndarray:
    """Coordinates of a document's vectors in (part of) its singular basis.

    Parameters
    ----------
    x : ndarray[n, D]
    svd_mode : {"cumulative", "absolute"} or None
        None: the full span (exact, numerically non-zero singular values).
        ``cumulative``: the first ``r`` directions with ``r = 1 + #{i : cumsum(s)_i /
        sum(s) <= threshold}``. ``absolute``: directions with ``s_i > threshold``
        (at least one).
    threshold : float

    Returns
    -------
    ndarray[n, r]
        ``U_r diag(s_r)``: inner products among the vectors are preserved exactly
        when ``svd_mode`` is None.
    """
    if x.shape[0] == 0:
        return x
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    if s[0] <= 0:
        return np.zeros((x.shape[0], 1))
    if svd_mode is None:
        r = int((s > s[0] * 1e-10).sum())
    elif svd_mode == "cumulative":
        r = int((np.cumsum(s) / s.sum() <= threshold).sum()) + 1
    else:
        r = int((s > threshold).sum())
    r = min(max(r, 1), len(s))
    return u[:, :r] * s[:r]


def _separated(y: np.ndarray, targets: np.ndarray, steps: int) -> np.ndarray:
    """Which ``targets`` attain a positive maximum along some direction: ``bool[m]``.

    Such a vector is not dominated (nothing scores strictly higher on that query). The
    directions come from Gilbert's algorithm, run for every target at once: for a
    target ``d = y_j``, the iterate ``c`` is a point of ``C = conv({y_i : i != j} U
    {0})`` (it starts at 0) and the candidate query is ``q = d - c``; ``d`` passes when
    ``q . d >= q . y_i`` for every ``i != j`` and ``q . d > 0``. Otherwise ``c`` moves
    towards the vector scoring highest on ``q`` (0 when none scores above 0) with an
    exact line search, the Frank-Wolfe step of ``min |d - c|^2`` over ``C``. When ``d``
    lies outside ``C``, ``q`` tends to ``d`` minus its projection on ``C``, on which
    ``d`` beats every point of ``C``, so the test passes after finitely many steps. A
    target inside ``C`` or on its boundary (dominated, or tied with a combination of
    others) never passes: it stays undecided for the LP.

    Parameters
    ----------
    y : ndarray[n, r]
        The document's vectors.
    targets : ndarray[m]
        Int, the rows to test.
    steps : int
        Iterations at most (the first tests each target's own direction).

    Returns
    -------
    ndarray[m]
        bool, True for targets shown to be the positive maximum along some ``q``.
    """
    d = y[targets]  # [m, r]
    c = np.zeros_like(d)
    passed = np.zeros(len(targets), dtype=bool)
    active = np.arange(len(targets))
    for _ in range(steps):
        q = d[active] - c[active]
        rows = np.arange(len(active))
        scores = q @ y.T  # [a, n]
        scores[rows, targets[active]] = -np.inf
        best = scores.argmax(1)
        top = scores[rows, best]
        own = np.einsum("ar,ar->a", q, d[active])
        done = (top <= own) & (own > 0)
        passed[active[done]] = True
        vertex = np.where((top > 0)[:, None], y[best], 0.0)
        step = vertex - c[active]
        length = np.einsum("ar,ar->a", step, step)
        gain = np.einsum("ar,ar->a", q, step)
        moving = ~done & (gain > 0)  # gain <= 0: c is optimal, d is not outside C
        active, step = active[moving], step[moving]
        if not len(active):
            break
        c[active] += np.minimum(gain[moving] / length[moving], 1.0)[:, None] * step
    return passed


def _test_block(
    targets: np.ndarray, bases: list[np.ndarray], margin: float
) -> list[tuple[str, np.ndarray | None]]:
    """Dominance of each ``targets[i]`` w.r.t. the rows of ``bases[i]``, one LP.

    For each target d against its rows K, the LP

        v* = min sum(lambda) + s   s.t.  K^T lambda + s d = d,  lambda, s >= 0

    is always feasible (``s = 1``) and ``v* = min(1, gauge_K(d))`` with
    ``gauge_K(d) = min{sum lambda : d = K^T lambda, lambda >= 0}``. Its dual,
    ``max q . d`` s.t. ``K q <= 1``, ``q . d <= 1``, yields the certificate. The
    problems are independent, so they are stacked block-diagonally into a single
    ``linprog`` call (the objective separates; every block keeps its own optimum).

    Parameters
    ----------
    targets : ndarray[m, r]
    bases : list of ndarray[k_i, r]
    margin : float

    Returns
    -------
    list of (verdict, q)
        ``("dominated", None)``: ``sum lambda <= 1 - margin`` and ``K^T lambda``
        reproduces d; ``("certificate", q)``: ``q . d = 1 >= q . k`` for every row
        k; ``("keep", None)``: borderline or numerically unreliable (keeping is
        always safe).
    """
    # each block is solved for the unit target u = d / |d| with lambda = |d| mu, so
    # that HiGHS's absolute tolerances see O(1) numbers even for very short vectors
    lengths = np.linalg.norm(targets, axis=1)
    units = targets / lengths[:, None]
    blocks = [sparse.csc_matrix(np.hstack([k.T, u[:, None]])) for u, k in zip(units, bases)]
    costs = [np.append(np.full(k.shape[0], length), 1.0) for length, k in zip(lengths, bases)]
    problem = {
        "c": np.concatenate(costs),
        "A_eq": sparse.block_diag(blocks, format="csc"),
        "b_eq": units.reshape(-1),
        "bounds": (0, None),
    }
    # dual simplex without presolve is the fastest here; on a (rare) numerical
    # failure of this always-feasible LP, split the stack, then retry with presolve
    res = linprog(**problem, method="highs-ds", options={"presolve": False})
    if res.status != 0 and len(blocks) > 1:
        return [
            verdict
            for d, k in zip(targets, bases)
            for verdict in _test_block(d[None, :], [k], margin)
        ]
    if res.status != 0:
        res = linprog(**problem, method="highs")
    if res.status != 0:
        return [("keep", None)]
    r = targets.shape[1]
    out: list[tuple[str, np.ndarray | None]] = []
    col = 0
    for i, (d, k) in enumerate(zip(targets, bases)):
        x = res.x[col : col + k.shape[0] + 1]
        col += k.shape[0] + 1
        weights, s = x[:-1] * lengths[i], x[-1]
        if weights.sum() <= 1 - margin and s <= _RESIDUAL_TOL:
            exact = np.abs(weights @ k - d).max() <= _RESIDUAL_TOL
            out.append(("dominated", None) if exact else ("keep", None))
            continue
        # at v* = 1 the dual of the scaled block has q . u = 1 and q . k <= |d|
        q = np.asarray(res.eqlin.marginals[i * r : (i + 1) * r])
        if weights.sum() + s < 1 - 1e-9 or not float(q @ units[i]) > 0.5:
            out.append(("keep", None))
        else:
            out.append(("certificate", q / float(q @ d)))
    return out


def nondominated(
    x: np.ndarray,
    margin: float = 1e-6,
    svd_mode: str | None = None,
    svd_threshold: float = 0.0,
    grow: int = 16,
) -> np.ndarray:
    """Which vectors of one document survive dominance pruning.

    Vectors proven non-dominated by :func:`_separated` form the initial LP basis.
    In rounds, every undecided vector j is tested against the basis
    (:func:`_test_block`, all of a round's tests in few LP calls): dominated w.r.t.
    a subset of the others means dominated. Otherwise the certificate q is checked
    on the whole document; if no vector scores above ``q . d_j`` on it, j is kept.
    If some do, the best one is provably non-dominated (kept) and it and up to
    ``grow - 1`` further violators join the basis; j stays undecided. The basis
    grows in every round that leaves a vector undecided, so this terminates.

    Parameters
    ----------
    x : ndarray[n, D]
        The document's vectors (float64).
    margin : float
        Declare d dominated only when it is a non-negative combination of other
        vectors with total weight ``<= 1 - margin``.
    svd_mode : {"cumulative", "absolute"} or None
        None for the exact test; otherwise test in the reduced space
        (:func:`reduce_dimension`, the paper's approximate ``lp_svd``).
    svd_threshold : float
    grow : int
        Violators added to the basis per failed certificate.

    Returns
    -------
    ndarray[n]
        bool, True for vectors to keep (never all False for a non-zero document).
    """
    n = x.shape[0]
    if n <= 1:
        return np.ones(n, dtype=bool)
    # the exact test needs the span's coordinates for its LPs only (the certificates
    # depend on inner products, which they preserve)
    y = x if svd_mode is None else reduce_dimension(x, svd_mode, svd_threshold)
    norms = np.linalg.norm(y, axis=1)
    zero = norms <= 1e-12 * max(1.0, float(norms.max()))
    keep = ~zero
    keep[keep] = _separated(y, np.flatnonzero(keep), _SEPARATION_STEPS)
    in_basis = keep.copy()
    decided = keep | zero
    if svd_mode is None and not decided.all():
        y = reduce_dimension(x, None)
        norms = np.linalg.norm(y, axis=1)
    while not decided.all():
        undecided = np.flatnonzero(~decided)
        undecided = undecided[np.argsort(-norms[undecided])]
        bases = []
        for j in undecided:
            rows = in_basis.copy()
            rows[j] = False
            bases.append(y[rows])
        verdicts: list[tuple[str, np.ndarray | None]] = []
        start = 0
        while start < len(undecided):
            stop = start + 1
            size = bases[start].size
            while stop < len(undecided) and size + bases[stop].size <= _BLOCK_NONZEROS:
                size += bases[stop].size
                stop += 1
            verdicts += _test_block(y[undecided[start:stop]], bases[start:stop], margin)
            start = stop
        grown = in_basis.copy()
        for j, (verdict, q) in zip(undecided, verdicts):
            if verdict == "dominated":
                decided[j] = True
                continue
            if verdict == "keep" or keep[j]:
                keep[j] = decided[j] = True
                continue
            scores = y @ q
            scores[j] = -np.inf
            tol = 1e-9 * (1 + np.abs(q).sum() * float(norms.max()))
            best = int(np.argmax(scores))
            if scores[best] <= 1 + tol or in_basis[best]:
                # the certificate holds for the whole document (or, with a basis vector
                # on top, the LP disagrees numerically: stay conservative)
                keep[j] = decided[j] = True
                continue
            # the document's best vector on q scores above 1 > 0: not dominated
            keep[best] = decided[best] = True
            violators = np.flatnonzero((scores > 1 + tol) & ~in_basis)
            grown[violators[np.argsort(-scores[violators])][:grow]] = True
        in_basis = grown
    if not keep.any():
        keep[int(np.argmax(norms))] = True
    return keep


def _single_threaded() -> AbstractContextManager:
    """Limit BLAS to one thread (when threadpoolctl is installed)."""
    return threadpool_limits(1) if threadpool_limits is not None else nullcontext()


def _single_threaded_worker() -> None:
    """Worker initializer: BLAS with one thread for the worker's life."""
    if threadpool_limits is not None:
        threadpool_limits(1)


def _nondominated_job(args: tuple[np.ndarray, float, str | None, float]) -> np.ndarray:
    return nondominated(*args)


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool kept for the life of the process (spawned: safe with torch)."""
    if workers not in _POOLS:
        _POOLS[workers] = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_single_threaded_worker,
        )
    return _POOLS[workers]


class LosslessPruning(Compressor):
    """Dominance (LP) or norm pruning of document vectors, plus its regularizers.

    See the module docstring for the method and its exactness argument. Pruning
    runs at index time (``posthoc=True``); training adds the regularizers.

    The evaluator reads the prune ratio after indexing from :attr:`prune_ratio`
    (``1 - vectors_out / vectors_in``, counted over document forwards in eval mode;
    :meth:`reset_counts` clears the counters).

    Parameters
    ----------
    budget : int or None
        Lossless pruning chooses its own count; a budget caps it (keeping the
        largest-norm survivors; lossy). Normally null.
    posthoc : bool
        Must be True for the LP strategies (an LP per token is an index-time job).
    strategy : {"lp", "lp_svd", "norm"}
    svd_mode : {"cumulative", "absolute"}
        How ``lp_svd`` picks its rank.
    svd_threshold : float
        Cumulative share of the singular values (in (0, 1]) or absolute floor.
    norm_threshold : float or None
        Drop vectors with a smaller norm (required by ``norm``; optional first step
        of the LP strategies).
    margin : float
        LP decision margin (see :func:`nondominated`).
    min_keep : int
        Keep at least this many vectors (largest norms) of a non-empty document.
    workers : int
        Processes for the per-document LPs (1: in-process).
    nuclear_weight, similarity_weight, l1_weight : float
        Weights of the regularizers in :meth:`regularization`.
    similarity_eps : float
        Stabiliser of the document-similarity regularizer.
    """

    counts_pruning = True

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = True,
        strategy: str = "lp",
        svd_mode: str = "cumulative",
        svd_threshold: float = 0.7,
        norm_threshold: float | None = None,
        margin: float = 1e-6,
        min_keep: int = 1,
        workers: int = 1,
        nuclear_weight: float = 0.0,
        similarity_weight: float = 0.0,
        l1_weight: float = 0.0,
        similarity_eps: float = 1e-2,
    ) -> None:
        super().__init__(budget=budget, posthoc=posthoc)
        if strategy not in STRATEGIES:
            raise ValueError(f"compressor.strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy != "norm" and not posthoc:
            raise ValueError(
                f"compressor.strategy={strategy} solves an LP per token and runs at index time "
                "only: set compressor.posthoc=true"
            )
        if svd_mode not in SVD_MODES:
            raise ValueError(f"compressor.svd_mode must be one of {SVD_MODES}, got {svd_mode!r}")
        if strategy == "lp_svd" and not svd_threshold > 0:
            raise ValueError(f"compressor.svd_threshold must be > 0, got {svd_threshold}")
        if svd_mode == "cumulative" and strategy == "lp_svd" and svd_threshold > 1:
            raise ValueError(
                f"compressor.svd_threshold is a share of the spectrum with svd_mode=cumulative "
                f"and must be in (0, 1], got {svd_threshold}"
            )
        if strategy == "norm" and norm_threshold is None:
            raise ValueError("compressor.strategy=norm needs compressor.norm_threshold")
        if norm_threshold is not None and norm_threshold < 0:
            raise ValueError(f"compressor.norm_threshold must be >= 0, got {norm_threshold}")
        if margin < 0:
            raise ValueError(f"compressor.margin must be >= 0, got {margin}")
        if int(min_keep) != min_keep or min_keep < 0:
            raise ValueError(f"compressor.min_keep must be an integer >= 0, got {min_keep}")
        if int(workers) != workers or workers < 1:
            raise ValueError(f"compressor.workers must be a positive integer, got {workers}")
        for name, value in (
            ("nuclear_weight", nuclear_weight),
            ("similarity_weight", similarity_weight),
            ("l1_weight", l1_weight),
        ):
            if value < 0:
                raise ValueError(f"compressor.{name} must be >= 0, got {value}")
        self.strategy = strategy
        self.svd_mode = svd_mode
        self.svd_threshold = float(svd_threshold)
        self.norm_threshold = norm_threshold
        self.margin = float(margin)
        self.min_keep = int(min_keep)
        self.workers = int(workers)
        self.nuclear_weight = float(nuclear_weight)
        self.similarity_weight = float(similarity_weight)
        self.l1_weight = float(l1_weight)
        self.similarity_eps = float(similarity_eps)
        self.vectors_in = 0
        self.vectors_out = 0

    @property
    def prune_ratio(self) -> float:
        """Fraction of document vectors removed since the last :meth:`reset_counts`."""
        return 1.0 - self.vectors_out / self.vectors_in if self.vectors_in else 0.0

    def reset_counts(self) -> None:
        """Zero :attr:`vectors_in` and :attr:`vectors_out`."""
        self.vectors_in = 0
        self.vectors_out = 0

    def _lp_keep(self, vectors: Tensor, keep: Tensor) -> Tensor:
        """Dominance test per document, ``Tensor[B, N]`` bool."""
        # one conversion of the batch (per-document tensor indexing costs more)
        array = vectors.detach().double().cpu().numpy()
        selected = keep.cpu().numpy()
        svd_mode = self.svd_mode if self.strategy == "lp_svd" else None
        jobs = [(x[k], self.margin, svd_mode, self.svd_threshold) for x, k in zip(array, selected)]
        if self.workers > 1 and len(jobs) > 1:
            results = list(_pool(self.workers).map(_nondominated_job, jobs))
        else:
            with _single_threaded():
                results = [_nondominated_job(job) for job in jobs]
        out = selected.copy()
        for b, survive in enumerate(results):
            out[b, selected[b]] = survive
        return torch.from_numpy(out).to(keep.device)

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Prune documents ``vectors[B, N, D]``; returns the survivors in token order."""
        mask = states.mask.bool()
        norms = vectors.detach().float().norm(dim=-1)
        keep = mask.clone()
        if self.norm_threshold is not None:
            keep &= norms >= self.norm_threshold
        if self.strategy != "norm":
            keep = self._lp_keep(vectors, keep)
        lengths = mask.sum(1)
        short = keep.sum(1) < torch.minimum(lengths, torch.full_like(lengths, self.min_keep))
        if bool(short.any()):
            extra = top_scoring(norms, mask, lengths.clamp(max=self.min_keep))
            keep = torch.where(short[:, None], keep | extra, keep)
        if self.budget is not None:
            keep = top_scoring(norms, keep, keep.sum(1).clamp(max=self.budget))
        if not self.training:
            self.vectors_in += int(lengths.sum())
            self.vectors_out += int(keep.sum())
        return select_tokens(vectors, keep)

    def regularization(self, docs: Compressed) -> dict[str, Tensor]:
        """Weighted regularizers on the scored documents (the paper's three).

        - ``nuclear_norm``: ``mean_b ||D_b||_* / min(n_b, D)``, the nuclear norm of
          each document's (masked) token matrix, pushing it towards low rank.
        - ``doc_similarity``: ``mean_b sum_i (|d_i| - 1) / (|d_i| + eps) *
          sum_{j != i} d_i . d_j / n_b^2`` (the authors' released form): a short
          vector is rewarded for pointing where the document's other vectors point,
          so it ends up dominated; unit-norm vectors are unaffected.
        - ``l1_norm``: mean token norm over real tokens (L1 of the norm vector),
          favouring small norms, hence norm and dominance pruning.

        Parameters
        ----------
        docs : Compressed
            ``vectors[B, M, D]``, ``mask[B, M]``.

        Returns
        -------
        dict of str to Tensor
            The terms with a non-zero weight, each already multiplied by it.
        """
        vectors = docs.vectors.float()
        mask = docs.mask.float()
        masked = vectors * mask[..., None]
        lengths = mask.sum(1)
        terms: dict[str, Tensor] = {}
        if self.nuclear_weight:
            nuclear = torch.linalg.matrix_norm(masked, ord="nuc")
            scale = lengths.clamp(min=1, max=vectors.shape[-1])
            terms["nuclear_norm"] = self.nuclear_weight * (nuclear / scale).mean()
        if self.similarity_weight:
            norms = vectors.norm(dim=-1)
            multiplier = (norms - 1) / (norms + self.similarity_eps)
            gram = masked @ masked.transpose(1, 2)
            off_diagonal = gram.sum(-1) - gram.diagonal(dim1=1, dim2=2)
            per_doc = (multiplier * off_diagonal * mask).sum(1) / lengths.clamp(min=1) ** 2
            terms["doc_similarity"] = self.similarity_weight * per_doc.mean()
        if self.l1_weight:
            l1 = (vectors.norm(dim=-1) * mask).sum() / mask.sum().clamp(min=1)
            terms["l1_norm"] = self.l1_weight * l1
        return terms
