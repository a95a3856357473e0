"""Report tables: one row per run label, one column per dataset (or dataset x budget).

Cells hold a run's metrics, their percentage of the baseline row's value on the same
column, and the p-value of a paired test against the baseline run
(:mod:`colcompress.analysis.significance`); the stored zero-shot baselines of the runs
(``bm25``, ``dense``, ``multivector``) are reference rows. Rendering is
:mod:`colcompress.analysis.render`.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colcompress.analysis.records import AnalysisError, FailedRun, RunRecord, find_runs
from colcompress.analysis.significance import Significance

REFERENCE_ORDER = ("bm25", "dense", "multivector")  # the names evaluation.baselines writes


@dataclass
class Cell:
    """One table cell: a row (run label or reference) on one column (dataset[@budget]).

    ``metrics`` holds every metric of the run, or of the reference baseline (``run``
    None); per metric, ``pct`` is its percentage of the baseline row's value on the
    same column, ``p_value`` the test against the baseline (None: not tested) and
    ``significant`` whether ``p_value < alpha``; ``published`` the published percentage
    of the same method on the same dataset (and budget), from ``--published``.
    """

    row: str
    column: str
    dataset: str
    metrics: dict[str, float]
    run: RunRecord | None = None
    pct: dict[str, float | None] = field(default_factory=dict)
    p_value: dict[str, float | None] = field(default_factory=dict)
    significant: dict[str, bool] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """The tables of one report (see :func:`build_report`), rows and columns in order."""

    metrics: list[str]
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    baseline: str
    test: str
    alpha: float
    failed: list[FailedRun]
    notes: list[str]
    digits: int = 3
    published: Path | None = None


PUBLISHED_COLUMNS = ("method", "dataset", "budget", "metric", "pct")

PublishedKey = tuple[str, str, int | None, str]


def read_published(path: Path) -> dict[PublishedKey, float]:
    """Published results to set beside the runs: a CSV with the columns
    ``method,dataset,budget,metric,pct``, ``pct`` the method's percentage of its own
    uncompressed model, ``budget`` empty for any budget.

    Returns
    -------
    dict
        ``(method, dataset, budget or None, metric) -> pct``.

    Raises
    ------
    AnalysisError
        The file is unreadable, lacks a column, repeats a key or holds a value that is
        not a number; the message names the file and line.
    """
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = reader.fieldnames or [], list(reader)
    except OSError as err:
        raise AnalysisError(f"{path}: unreadable published results ({err})") from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in header]
    if missing:
        raise AnalysisError(f"{path}: missing column(s) {', '.join(missing)}")
    published: dict[PublishedKey, float] = {}
    for line, row in enumerate(rows, start=2):
        try:
            budget = int(row["budget"]) if row["budget"].strip() else None
            key = (row["method"].strip(), row["dataset"].strip(), budget, row["metric"].strip())
            value = float(row["pct"])
        except (TypeError, ValueError):
            raise AnalysisError(f"{path}:{line}: budget and pct must be numbers: {row}") from None
        if key in published:
            raise AnalysisError(f"{path}:{line}: {key} is given twice")
        published[key] = value
    return published


def check_comparable(runs: list[RunRecord], metrics: list[str]) -> None:
    """Refuse runs that were not evaluated the same way.

    Raises
    ------
    AnalysisError
        Runs differ in metric settings (``evaluation.metrics``, ``evaluation.top_k``),
        runs of one dataset differ in split or slice (``max_eval_queries``,
        ``max_eval_docs``, slicing seed), or a run lacks a requested metric; the
        message names the runs of each group.
    """

    def settings(run: RunRecord) -> tuple[Any, ...]:
        ev = run.config.get("evaluation", {})
        return (tuple(ev["metrics"]) if ev.get("metrics") is not None else None, ev.get("top_k"))

    def refuse_unless_one(groups: dict[Any, list[RunRecord]], why: str, *names: str) -> None:
        if len(groups) > 1:
            raise AnalysisError(
                f"{why}; report them separately:\n"
                + "\n".join(
                    f"  {', '.join(f'{n}={v!r}' for n, v in zip(names, key))}: "
                    + ", ".join(str(r.path) for r in group)
                    for key, group in groups.items()
                )
            )

    why = "runs were evaluated with different metric settings"
    refuse_unless_one(_group(runs, settings), why, "evaluation.metrics", "evaluation.top_k")
    for dataset, members in _group(runs, lambda r: r.dataset).items():
        why = f"runs on {dataset} were evaluated on different data (split or eval slice)"
        names = ("split", "max_eval_queries", "max_eval_docs", "slice seed", "document_split")
        refuse_unless_one(_group(members, RunRecord.eval_slice), why, *names)
    for metric in metrics:
        lacking = [str(r.path) for r in runs if metric not in r.metrics]
        if lacking:
            raise AnalysisError(f"metric {metric!r} is missing from: {', '.join(lacking)}")


def _group(runs: list[RunRecord], key: Any) -> dict[Any, list[RunRecord]]:
    groups: dict[Any, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return groups


def row_label(run: RunRecord, budget_columns: bool) -> str:
    """The run's label; with budget columns its ``@<budget>`` moves to the column."""
    if budget_columns and run.budget is not None:
        return run.label.replace(f"@{run.budget}", "", 1)
    return run.label


def _budget_key(value: Any) -> tuple[int, float]:
    return (0, 0.0) if value is None else (1, float(value))


def _fill_transfer_rows(chosen: dict[tuple[str, str], RunRecord]) -> None:
    """Put a model tested at the budget it was trained with into its transfer row too.

    Runs trained at ``B`` and indexed at other test budgets form the row
    ``<label> (train B)``; the run labelled ``<label>`` and trained and tested at ``B``
    is that row's ``@B`` cell (the paper's Table 6), unless a run with ``test_budget=B``
    fills it. A row left with nothing but such moved runs would repeat them: dropped.
    """
    transfer_rows = {(row, r.dataset) for (row, _), r in chosen.items() if r.train_budget}
    moved: dict[str, list[bool]] = defaultdict(list)
    for (row, column), run in list(chosen.items()):
        target = f"{row} (train {run.budget})"
        in_transfer = run.train_budget is None and (target, run.dataset) in transfer_rows
        moved[row].append(in_transfer)
        if in_transfer:
            chosen.setdefault((target, column), run)
    for key in [k for k in chosen if all(moved.get(k[0], [False]))]:
        del chosen[key]


def build_report(
    paths: list[str | Path],
    metrics: list[str] | None = None,
    baseline: str = "none",
    test: str = "t-test",
    alpha: float = 0.05,
    permutations: int = 1000,
    seed: int = 42,
    budget_columns: bool = False,
    data_dir: str | Path | None = None,
    digits: int = 3,
    order: list[str] | None = None,
    average: bool | None = None,
    published: str | Path | None = None,
) -> Report:
    """Collect the runs below ``paths`` into tables.

    Parameters
    ----------
    paths : list of str or Path
        Run directories, sweep directories or ``results.json`` files.
    metrics : list of str or None
        Metrics to tabulate (None: ``ndcg@10`` when every run has it, else the first
        run's first metric).
    baseline : str
        Row label of the 100% reference (default ``none``, the uncompressed model); a
        column without that row gets no percentages and no tests.
    test, alpha, permutations, seed
        The significance test (see :class:`~colcompress.analysis.significance.Significance`).
    budget_columns : bool
        Columns are dataset x budget (``nfcorpus@32``), the budget leaves the row labels,
        and a run trained at ``B`` fills the ``@B`` cell of its transfer row
        ``<label> (train B)`` (Table 6).
    data_dir : str, Path or None
        BEIR folder for the qrels (None: the one recorded in each run's config).
    digits : int
        Decimals of the metric values in Markdown and LaTeX.
    order : list of str or None
        Methods in row order after the references and the baseline row; methods not
        listed follow as found. Within a method: by training budget, budget, as found.
    average : bool or None
        Add an ``average`` column, each row's unweighted mean over the dataset columns
        where it has them all (Table 2). None: when a run evaluated several
        collections. Not with ``budget_columns``.
    published : str, Path or None
        A CSV of published percentages (see :func:`read_published`), set beside the
        percentage of each run of the same method, dataset and budget.

    Raises
    ------
    AnalysisError
        Nothing found, an unknown test, runs that may not be compared (see
        :func:`check_comparable`), or an unreadable ``published`` file.
    """
    published_path = Path(published) if published else None
    paper = read_published(published_path) if published_path else {}
    tester = Significance(test, alpha, permutations, seed, Path(data_dir) if data_dir else None)
    runs, failed = find_runs(paths)
    notes: list[str] = []
    if not runs:
        return Report(metrics or [], [], [], {}, baseline, test, alpha, failed, notes, digits)
    if not metrics:
        ndcg = all("ndcg@10" in r.metrics for r in runs)
        metrics = ["ndcg@10"] if ndcg else [next(iter(runs[0].metrics))]
    check_comparable(runs, metrics)
    found = {id(r): i for i, r in enumerate(runs)}

    def column_of(dataset: str, budget: Any) -> str:
        return f"{dataset}@{budget}" if budget_columns and budget is not None else dataset

    # one run per (row, column): the newest wins, older duplicates are noted
    chosen: dict[tuple[str, str], RunRecord] = {}
    dupes: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.path.stat().st_mtime, str(r.path))):
        key = (row_label(run, budget_columns), column_of(run.dataset, run.budget))
        if key in chosen:
            dupes[key].append(chosen[key])
        chosen[key] = run
    if budget_columns:
        _fill_transfer_rows(chosen)
    for (row, column), older in dupes.items():
        notes.append(
            f"{row} on {column}: {len(older) + 1} runs, kept the newest "
            f"{chosen[row, column].run_dir}; superseded: "
            + ", ".join(str(r.run_dir) for r in older)
        )

    datasets = sorted({r.dataset for r in runs})
    budgets = {
        d: sorted({r.budget for r in runs if r.dataset == d and r.budget is not None})
        for d in datasets
    }
    columns = [
        column_of(d, b)
        for d in datasets
        for b in (budgets[d] if budget_columns and budgets[d] else [None])
    ]

    def columns_of(dataset: str, budget: Any) -> list[str]:
        if budget_columns and budget is None and budgets[dataset]:
            return [column_of(dataset, b) for b in budgets[dataset]]
        return [column_of(dataset, budget)]

    cells: dict[tuple[str, str], Cell] = {}
    row_runs: dict[str, RunRecord | None] = {}
    for (row, _), run in chosen.items():
        for column in columns_of(run.dataset, run.budget):
            cells[row, column] = Cell(row, column, run.dataset, run.metrics, run)
        first = row_runs.get(row)
        if first is None or found[id(run)] < found[id(first)]:
            row_runs[row] = run  # the row sorts by its first run found

    # reference rows: the stored baselines, preferring the baseline run's copy
    for dataset in datasets:
        members = sorted(
            (r for r in chosen.values() if r.dataset == dataset),
            key=lambda r: row_label(r, budget_columns) != baseline,
        )
        refs: dict[str, dict[str, float]] = {}
        for run in members:
            for name, stored in (run.results.get("baselines") or {}).items():
                values = stored.get("metrics", {})
                if not all(m in values for m in metrics):
                    continue
                if name not in refs:
                    refs[name] = dict(values)
                elif any(abs(refs[name][m] - values[m]) > 1e-9 for m in metrics):
                    notes.append(
                        f"{dataset}: runs store different {name} baselines; "
                        f"kept {members[0].run_dir}'s"
                    )
        for name, values in refs.items():
            row = f"{name} (ref)"
            row_runs.setdefault(row, None)
            for column in columns_of(dataset, None):
                cells[row, column] = Cell(row, column, dataset, values)

    if average is None:
        average = any(r.collection is not None for r in runs)
    if average and not budget_columns and len(columns) > 1:
        for row in dict.fromkeys(row for row, _ in cells):
            members = [cells.get((row, column)) for column in columns]
            if all(c is not None and all(m in c.metrics for m in metrics) for c in members):
                mean = {m: sum(c.metrics[m] for c in members) / len(members) for m in metrics}
                cells[row, "average"] = Cell(row, "average", "average", mean)
        columns.append("average")

    # percentages and significance against the baseline row of each column
    tested: dict[tuple[int, int], dict[str, float] | None] = {}
    if not any(row == baseline for row, _ in cells):
        notes.append(f"no row {baseline!r}: no percentages or significance tests")
    for (_, column), cell in cells.items():
        base = cells.get((baseline, column))
        if base is None:
            continue
        for metric in metrics:
            ref = base.metrics[metric]
            cell.pct[metric] = 100.0 * cell.metrics[metric] / ref if ref else None
        if cell.run is None or base.run is None or cell.run is base.run:
            continue
        key = (id(base.run), id(cell.run))
        if key not in tested:
            tested[key] = tester.compare(base.run, cell.run, metrics)
        for metric, p in (tested[key] or {}).items():
            cell.p_value[metric] = None if math.isnan(p) else p
            cell.significant[metric] = not math.isnan(p) and p < alpha
    for cell in cells.values():
        for metric in metrics if cell.run is not None else []:
            for budget in (cell.run.budget, None):
                pct = paper.get((cell.run.method, cell.dataset, budget, metric))
                if pct is not None:
                    cell.published[metric] = pct
                    break
    notes += tester.notes

    order = list(order or [])

    def sort_key(row: str) -> tuple[Any, ...]:
        run = row_runs[row]
        if run is None:
            name = row.removesuffix(" (ref)")
            rank = REFERENCE_ORDER.index(name) if name in REFERENCE_ORDER else len(REFERENCE_ORDER)
            return (0, rank, name)
        if row == baseline:
            return (1,)
        first = min(found[id(r)] for r in runs if r.method == run.method)
        method = order.index(run.method) if run.method in order else len(order) + first
        return (
            2,
            method,
            _budget_key(run.train_budget),
            _budget_key(None if budget_columns else run.budget),
            found[id(run)],
        )

    rows = sorted(row_runs, key=sort_key)
    notes = list(dict.fromkeys(notes))  # each note once
    return Report(
        metrics, rows, columns, cells, baseline, test, alpha, failed, notes, digits, published_path
    )
