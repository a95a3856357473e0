"""Retrieval quality against inverse utilization evenness across runs (Table 8, Figure 4)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcompress.analysis.plots import correlation_figure
from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.atomic import write_text_atomic
from colcompress.evaluation.plots import save_png

EVENNESS = ("cv", "gini")


def inverse_evenness(run: RunRecord, measure: str) -> float:
    """``1 / cv`` or ``1 / gini`` of a run's utilization."""
    value = getattr(run.utilization, measure)
    if value is None or value == 0:
        raise AnalysisError(
            f"{run.path}: utilization.{measure} is {value}, so 1/{measure} is undefined "
            "(no match records, or perfectly even strength)"
        )
    return 1.0 / value


def short_labels(runs: Sequence[RunRecord]) -> list[str]:
    """The runs' labels, without ``@<budget>`` when all share one budget, and with the
    directory name added where two labels would be equal."""
    budgets = {r.budget for r in runs}
    shared = budgets.pop() if len(budgets) == 1 else None
    labels = [r.label.replace(f"@{shared}", "", 1) if shared else r.label for r in runs]
    return [
        f"{lb} ({r.run_dir.name})" if labels.count(lb) > 1 else lb for lb, r in zip(labels, runs)
    ]


@dataclass
class Correlation:
    """Pearson r (and two-sided p) of one metric with one inverse evenness measure."""

    metric: str
    evenness: str
    r: float
    p: float
    n: int


@dataclass
class CorrelationTable:
    """Result of :func:`correlate`: the runs, their labels, one row per (metric, evenness)."""

    runs: list[RunRecord]
    labels: list[str]
    metrics: list[str]
    correlations: list[Correlation]

    def get(self, metric: str, evenness: str) -> Correlation:
        """The correlation of ``metric`` with ``1 / evenness``."""
        for c in self.correlations:
            if (c.metric, c.evenness) == (metric, evenness):
                return c
        raise KeyError(f"no correlation for metric={metric!r}, evenness={evenness!r}")

    def to_markdown(self) -> str:
        """Table 8 layout: Pearson r and p-value of each metric vs 1/CV and 1/Gini."""

        def cell(c: Correlation) -> str:
            if math.isnan(c.r):
                return "n/a | n/a"
            stars = "**" if c.p < 0.01 else "*" if c.p < 0.05 else ""
            return f"{c.r:.3f}{stars} | " + ("<0.001" if c.p < 0.001 else f"{c.p:.3f}")

        lines = [
            "| Metric | 1/CV Pearson r | p-value | 1/Gini Pearson r | p-value |",
            "|---|---|---|---|---|",
        ]
        for metric in self.metrics:
            lines.append(
                f"| {metric} | " + " | ".join(cell(self.get(metric, e)) for e in EVENNESS) + " |"
            )
        n = len(self.runs)
        lines += ["", f"n = {n} runs; ** p < 0.01, * p < 0.05 (two-sided Pearson test)."]
        return "\n".join(lines)

    def runs_markdown(self) -> str:
        """One row per run: its metrics, CV, Gini and index usage."""
        head = ["run", "method", *self.metrics, "CV", "Gini", "1/CV", "1/Gini", "index usage"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for run, label in zip(self.runs, self.labels):
            s = run.utilization
            usage = "n/a" if s.index_usage is None else f"{100 * s.index_usage:.2f}%"
            row = [
                run.run_dir.name,
                label,
                *(f"{run.metrics[m]:.4f}" for m in self.metrics),
                f"{s.cv:.2f}",
                f"{s.gini:.4f}",
                f"{1 / s.cv:.4f}",
                f"{1 / s.gini:.3f}",
                usage,
            ]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)


def correlate(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> CorrelationTable:
    """``scipy.stats.pearsonr(metric, 1 / e)`` across runs for each metric and e in (CV, Gini).

    Parameters
    ----------
    runs : sequence of RunRecord
        At least 3 runs evaluated with utilization analysis.
    metrics : sequence of str, optional
        Default: every metric present in all runs, in the first run's order.
    labels : sequence of str, optional
        One name per run (default :func:`short_labels`).

    Returns
    -------
    CorrelationTable
        r and p are NaN when a metric or the evenness is constant across runs.

    Raises
    ------
    AnalysisError
        Fewer than 3 runs, labels not one per run, a metric missing from a run, or an
        undefined CV/Gini; names the file.
    """
    from scipy.stats import pearsonr

    runs = list(runs)
    if len(runs) < 3:
        raise AnalysisError(f"a Pearson correlation needs at least 3 runs, got {len(runs)}")
    labels = short_labels(runs) if labels is None else list(labels)
    if len(labels) != len(runs):
        raise AnalysisError(f"{len(labels)} labels for {len(runs)} runs")
    if metrics is None:
        metrics = [m for m in runs[0].metrics if all(m in r.metrics for r in runs)]
    for run in runs:
        missing = [m for m in metrics if m not in run.metrics]
        if missing:
            raise AnalysisError(
                f"{run.path}: metrics {missing} missing (it has {sorted(run.metrics)})"
            )
    correlations = []
    for evenness in EVENNESS:
        x = np.array([inverse_evenness(r, evenness) for r in runs])
        for metric in metrics:
            y = np.array([r.metrics[metric] for r in runs], dtype=np.float64)
            r_value = p_value = math.nan
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = pearsonr(x, y)
                r_value, p_value = float(result.statistic), float(result.pvalue)
            correlations.append(Correlation(metric, evenness, r_value, p_value, len(runs)))
    return CorrelationTable(runs, labels, list(metrics), correlations)


def write_correlation(table: CorrelationTable, out: str | os.PathLike) -> list[Path]:
    """Write ``correlation.md`` and ``correlation_inv_{cv,gini}.png`` into ``out``."""
    out = Path(out)
    text = "\n\n".join([table.to_markdown(), table.runs_markdown()]) + "\n"
    written = [write_text_atomic(text, out / "correlation.md")]
    for evenness, name in zip(EVENNESS, ("CV", "Gini")):
        fig = correlation_figure(
            [inverse_evenness(r, evenness) for r in table.runs],
            {m: [r.metrics[m] for r in table.runs] for m in table.metrics},
            table.labels,
            xlabel=f"1/{name} of per-position matching strength",
        )
        written.append(save_png(fig, out / f"correlation_inv_{evenness}.png"))
    return written
