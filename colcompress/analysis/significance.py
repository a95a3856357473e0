"""Paired significance tests of a run against a baseline run, on per-query scores.

ranx scores every query of both rankings; the paired t-test is scipy's, and Fisher's
randomization test is :func:`fisher_randomization`, whose draws depend on the seed
alone (not on threads or processes).
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.data.beir import slice_beir
from colcompress.data.splits import load_splits
from colcompress.evaluation.metrics import per_query_scores

Ranking = dict[str, dict[str, float]]
_CHUNK_ENTRIES = 1 << 22  # random numbers fisher_randomization draws at once (32 MiB)


def fisher_randomization(
    control: np.ndarray,
    treatment: np.ndarray,
    permutations: int,
    seed: int,
    chunk_size: int | None = None,
) -> float:
    """Two-sided p-value of Fisher's paired randomization test (Monte Carlo).

    Each draw swaps the two scores of every query with probability 1/2, which flips
    the sign of the query's difference ``d = treatment - control``; the p-value is
    the fraction of draws whose ``|mean(signs * d)|`` reaches the observed
    ``|mean(d)|`` (Smucker et al., CIKM 2007; ranx's estimator). Sums that tie up to
    floating-point rounding count as reaching it.

    Parameters
    ----------
    control, treatment : array of shape (queries,)
        Per-query scores of the two systems, in the same query order.
    permutations : int
        Number of random sign vectors drawn.
    seed : int
        Seed of the ``numpy.random.default_rng`` the signs come from.
    chunk_size : int or None
        Draws generated at once (None: as many as keep about ``2**22`` random
        numbers in memory). The p-value does not depend on it: the chunks are
        consecutive blocks of one generator's stream.

    Returns
    -------
    float
        The p-value; 1.0 when the differences are all zero.
    """
    control = np.asarray(control, dtype=np.float64)
    treatment = np.asarray(treatment, dtype=np.float64)
    if (
        permutations < 1
        or control.ndim != 1
        or control.shape != treatment.shape
        or not control.size
    ):
        raise ValueError(
            "need permutations >= 1 and two non-empty score vectors of one length, got "
            f"{permutations} permutations and shapes {control.shape}, {treatment.shape}"
        )
    d = treatment - control
    observed = abs(d.sum())
    tolerance = 1e-9 * np.abs(d).sum()  # rounding of sums of up to d.size terms
    chunk = chunk_size or max(1, _CHUNK_ENTRIES // d.size)
    rng = np.random.default_rng(seed)
    reached, left = 0, permutations
    while left:
        rows = min(chunk, left)
        flipped = np.where(rng.random((rows, d.size)) < 0.5, -d, d)
        reached += int(np.count_nonzero(np.abs(flipped.sum(axis=1)) >= observed - tolerance))
        left -= rows
    return reached / permutations


def read_trec(path: Path) -> Ranking:
    """Read a TREC run file (``qid Q0 docid rank score tag``), gzipped if it ends in ``.gz``.

    Raises
    ------
    AnalysisError
        A line does not have six fields or a non-numeric score; names file and line.
    """
    run: Ranking = defaultdict(dict)
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise AnalysisError(
                    f"{path}:{lineno}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}"
                )
            try:
                run[parts[0]][parts[2]] = float(parts[4])
            except ValueError:
                raise AnalysisError(
                    f"{path}:{lineno}: score {parts[4]!r} is not a number"
                ) from None
    return dict(run)


class Significance:
    """Loads qrels and rankings once; compares runs against a baseline run.

    Parameters
    ----------
    test : str
        ``"t-test"`` (two-sided paired t-test, ``scipy.stats.ttest_rel``) or
        ``"fisher"`` (:func:`fisher_randomization` with ``permutations`` draws from
        ``seed``).
    alpha : float
        Significance level.
    permutations, seed : int
    data_dir : Path or None
        BEIR folder for the qrels (None: the one each run's config records).

    Attributes
    ----------
    notes : list of str
        Runs that could not be tested, and stored metrics the ranking does not reproduce
        (a note may repeat).
    """

    def __init__(
        self, test: str, alpha: float, permutations: int, seed: int, data_dir: Path | None
    ) -> None:
        if test not in ("t-test", "fisher"):
            raise AnalysisError(f"--test must be one of t-test, fisher, got {test!r}")
        self.test, self.alpha, self.permutations, self.seed = test, alpha, permutations, seed
        self.data_dir = data_dir
        self.notes: list[str] = []
        self._qrels: dict[tuple[Any, ...], dict[str, dict[str, int]] | None] = {}
        self._rankings: dict[Path, Ranking | None] = {}

    def qrels(self, run: RunRecord) -> dict[str, dict[str, int]] | None:
        """The judged qrels of the run's evaluation set (its split, cut by the document
        split and sliced as configured)."""
        folder = Path(self.data_dir) / run.dataset if self.data_dir else run.dataset_dir
        key = (str(folder), run.dataset, run.eval_slice())
        if key in self._qrels:
            return self._qrels[key]
        self._qrels[key] = None
        if folder is None or run.split is None:
            self.notes.append(f"{run.dataset}: no data dir or split recorded, no significance test")
            return None
        try:
            data = load_splits(folder, [run.split], run.document_split)[run.split]
        except (OSError, ValueError) as err:
            self.notes.append(
                f"{run.dataset}: qrels not loadable ({err}); no significance test "
                "(point --data-dir at the BEIR folder)"
            )
            return None
        _, queries, docs, _, _ = run.eval_slice()
        seed = run.config.get("dataset", {}).get("seed", run.config.get("seed", 0))
        data = slice_beir(data, queries, docs, seed)
        judged = {q: d for q, d in data.qrels.items() if any(r > 0 for r in d.values())}
        self._qrels[key] = judged
        return judged

    def ranking(self, run: RunRecord) -> Ranking | None:
        path = run.ranking
        if path is None:
            self.notes.append(f"{run.run_dir}: no run.trec, no significance test")
            return None
        if path not in self._rankings:
            self._rankings[path] = read_trec(path)
        return self._rankings[path]

    def compare(
        self, baseline: RunRecord, run: RunRecord, metrics: list[str]
    ) -> dict[str, float] | None:
        """Two-sided p-values of ``run`` against ``baseline`` per metric (None: untestable).

        Judged queries missing from a ranking count as retrieving nothing, as in the
        metrics of ``results.json``.
        """
        qrels = self.qrels(run)
        base, other = self.ranking(baseline), self.ranking(run)
        if not qrels or base is None or other is None:
            return None
        control = per_query_scores(qrels, base, metrics)
        treatment = per_query_scores(qrels, other, metrics)
        for source, scores in ((baseline, control), (run, treatment)):
            for metric in metrics:
                recomputed, stored = float(np.mean(scores[metric])), source.metrics[metric]
                if abs(recomputed - stored) > 1e-3:
                    self.notes.append(
                        f"{source.run_dir}: {metric} from run.trec and the qrels is "
                        f"{recomputed:.4f}, results.json says {stored:.4f} (different data?)"
                    )
        return {m: self.p_value(control[m], treatment[m]) for m in metrics}

    def p_value(self, control: np.ndarray, treatment: np.ndarray) -> float:
        """Two-sided p-value of the configured test on paired per-query scores (NaN:
        the t-test on identical scores)."""
        if self.test == "fisher":
            return fisher_randomization(control, treatment, self.permutations, self.seed)
        return float(stats.ttest_rel(control, treatment).pvalue)
