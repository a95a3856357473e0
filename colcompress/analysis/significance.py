"""Paired significance tests of a run against a baseline run (ranx, on the rankings)."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path
from typing import Any

from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.analysis.render import TESTS
from colcompress.data.beir import load_beir, slice_beir
from colcompress.evaluation.metrics import ranx_lock, ranx_qrels, ranx_run

Ranking = dict[str, dict[str, float]]


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
    """Loads qrels and rankings once; compares runs against a baseline run with ranx.

    Parameters
    ----------
    test : str
        ``"t-test"`` (two-sided paired t-test) or ``"fisher"`` (randomization test of
        ``permutations`` draws from ``seed``).
    alpha : float
        Significance level (ranx's ``max_p``).
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
        if test not in TESTS:
            raise AnalysisError(f"--test must be one of {', '.join(TESTS)}, got {test!r}")
        self.test, self.alpha, self.permutations, self.seed = test, alpha, permutations, seed
        self.data_dir = data_dir
        self.notes: list[str] = []
        self._qrels: dict[tuple[Any, ...], dict[str, dict[str, int]] | None] = {}
        self._rankings: dict[Path, Ranking | None] = {}

    def qrels(self, run: RunRecord) -> dict[str, dict[str, int]] | None:
        """The judged qrels of the run's evaluation set (its split, sliced as configured)."""
        folder = Path(self.data_dir) / run.dataset if self.data_dir else run.dataset_dir
        key = (str(folder), run.dataset, run.eval_slice())
        if key in self._qrels:
            return self._qrels[key]
        self._qrels[key] = None
        if folder is None or run.split is None:
            self.notes.append(f"{run.dataset}: no data dir or split recorded, no significance test")
            return None
        try:
            data = load_beir(folder, run.split)
        except (OSError, ValueError) as err:
            self.notes.append(
                f"{run.dataset}: qrels not loadable ({err}); no significance test "
                "(point --data-dir at the BEIR folder)"
            )
            return None
        _, queries, docs, _ = run.eval_slice()
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
        from ranx import compare

        qrels = self.qrels(run)
        base, other = self.ranking(baseline), self.ranking(run)
        if not qrels or base is None or other is None:
            return None
        with ranx_lock():
            report = compare(
                ranx_qrels(qrels),
                [ranx_run(base, "baseline"), ranx_run(other, "run")],
                list(metrics),
                stat_test=TESTS[self.test],
                n_permutations=self.permutations,
                max_p=self.alpha,
                random_seed=self.seed,
                make_comparable=True,
            )
        for name, source in (("baseline", baseline), ("run", run)):
            for metric in metrics:
                recomputed, stored = report.results[name][metric], source.metrics[metric]
                if abs(recomputed - stored) > 1e-3:
                    self.notes.append(
                        f"{source.run_dir}: {metric} from run.trec and the qrels is "
                        f"{recomputed:.4f}, results.json says {stored:.4f} (different data?)"
                    )
        return {m: float(report.comparisons["baseline", "run"][m]["p_value"]) for m in metrics}
