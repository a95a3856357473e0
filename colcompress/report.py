"""Paper-style tables from run directories.

``python -m colcompress.report RUN_DIRS_OR_SWEEP_DIRS... [options]`` reads every
``results.json`` below the given directories and prints, per metric, a table with

- rows: methods -- ``results["method"]`` plus the budget and whatever else tells runs
  of the same method apart (``agc@32``, ``agc@5``, ``agc@32 weighting=false``,
  ``agc@5 (train 32)``) -- and the stored baselines (``bm25 (ref)``, ``dense (ref)``,
  ``multivector (ref)``) as reference rows;
- columns: datasets (with ``--budget-columns``: dataset x budget, e.g. ``nfcorpus@32``);
- cells: the metric, its percentage of the uncompressed baseline (``none``) of the same
  dataset, and a significance mark (``†``: p < alpha against the baseline, paired
  t-test or Fisher's randomization test through ranx, on the runs' ``run.trec``, or
  ``run.trec.gz`` as ``experiments/archive_runs.sh`` keeps them);

plus an index table (compression ratio, measured vector reduction, vectors per
document, index size) and the list of failed runs. Markdown is printed; Markdown,
CSV (one row per cell and metric) and LaTeX are written to ``--out``.

Runs are only compared when they were evaluated the same way: the report refuses
runs of one dataset whose split or evaluation slice differ, and runs whose metric
settings differ, naming the runs.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colcompress.data.beir import load_beir, slice_beir
from colcompress.evaluation.metrics import ranx_lock, ranx_qrels, ranx_run
from colcompress.evaluation.results import method_name

REFERENCE_ORDER = ("bm25", "dense", "multivector")
METHOD_ORDER = (
    "none",
    "seqresize",
    "memtok",
    "hpool",
    "agc",
    "crisp",
    "kmeans_posthoc",
    "tail",
    "k_spacing",
    "prune",
    "lossless",
    "lossless_lp",
    "lossless_norm",
)
TESTS = {"t-test": "student", "fisher": "fisher"}
TEST_NAMES = {"t-test": "paired t-test", "fisher": "Fisher's randomization test"}
FORMATS = ("md", "csv", "tex")
MARK = "†"
# Config entries that never tell two runs of a method apart: where things are written,
# how they are logged, the dataset (a column) and the budget (in the label already).
IGNORED_KEYS = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "task_name",
    "tags",
    "train",
    "evaluate",
    "ckpt_path",
    "budget",
    "test_budget",
    "evaluation",
    "optimized_metric",
    "compressor.budget",
    "compressor.backend",
    "compressor.workers",
    "dataset._target_",
    "dataset.name",
    "dataset.data_dir",
    "dataset.url",
    "dataset.md5",
    "dataset.eval_split",
    "dataset.max_eval_queries",
    "dataset.max_eval_docs",
    "dataset.cache_dir",
    "dataset.num_workers",
    "dataset.seed",
    "index.index_dir",
    "trainer.default_root_dir",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.log_every_n_steps",
    "trainer.enable_model_summary",
)
_MISSING = "<unset>"


class ReportError(ValueError):
    """The runs cannot be reported together (or not at all); the message says which."""


@dataclass
class Run:
    """One finished run: its ``results.json`` and what the report needs from it.

    Attributes
    ----------
    path : Path
        The ``results.json`` file.
    results : dict
        Its content.
    """

    path: Path
    results: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config") or {}

    @property
    def method(self) -> str:
        return method_name(self.results)

    @property
    def dataset(self) -> str:
        return str(self.results.get("dataset") or self.config.get("dataset", {}).get("name", "?"))

    @property
    def split(self) -> str | None:
        return self.results.get("split") or self.config.get("dataset", {}).get("eval_split")

    @property
    def index(self) -> dict[str, Any]:
        return self.results.get("index") or {}

    @property
    def budget(self) -> int | None:
        """The budget the index was built with (None: no fixed budget)."""
        return self.index.get("budget")

    @property
    def train_budget(self) -> int | None:
        """The training budget when the run indexed with a different ``test_budget``."""
        if self.config.get("test_budget") is None:
            return None
        return self.index.get("train_budget")


@dataclass
class FailedRun:
    """A run that left no usable result.

    Attributes
    ----------
    run_dir : Path
    method, dataset : str
    reason : str
        The recorded error, or why the directory holds no result.
    """

    run_dir: Path
    method: str
    dataset: str
    reason: str


@dataclass
class Cell:
    """One table cell: a row (method or reference) on one column (dataset[@budget]).

    Attributes
    ----------
    row, column, dataset : str
    metrics : dict of str to float
        All metrics of the run (or reference baseline).
    run : Run or None
        The run behind the cell; None for reference rows.
    pct : dict of str to float or None
        Percentage of the baseline row's value on the same column, per metric.
    p_value : dict of str to float or None
        p-value of the test against the baseline, per metric (None: not tested).
    significant : dict of str to bool
        ``p_value < alpha``.
    """

    row: str
    column: str
    dataset: str
    metrics: dict[str, float]
    run: Run | None = None
    pct: dict[str, float | None] = field(default_factory=dict)
    p_value: dict[str, float | None] = field(default_factory=dict)
    significant: dict[str, bool] = field(default_factory=dict)


# ----------------------------------------------------------------------------- discovery


def _read_results(path: Path) -> dict[str, Any] | str:
    """The parsed file, or why it could not be read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return f"unreadable results.json: {err}"
    if not isinstance(data, dict):
        return "results.json does not hold a JSON object"
    return data


def find_runs(paths: list[str | Path]) -> tuple[list[Run], list[FailedRun]]:
    """Every ``results.json`` below ``paths``, split into finished and failed runs.

    Parameters
    ----------
    paths : list of str or Path
        Run directories, sweep directories or ``results.json`` files.

    Returns
    -------
    runs : list of Run
        Finished runs, in path order.
    failed : list of FailedRun
        Runs recorded as ``"status": "failed"``, unreadable or metric-less
        ``results.json`` files, and Hydra job directories (``.hydra/``) holding no
        ``results.json`` at all (crashed, still running, or ``evaluate=false``).

    Raises
    ------
    ReportError
        A path does not exist, or nothing was found below the paths.
    """
    files: dict[Path, None] = {}
    job_dirs: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ReportError(f"{path}: no such file or directory")
        if path.is_file():
            files[path.resolve()] = None
            continue
        for found in sorted(path.rglob("results.json")):
            files[found.resolve()] = None
        for hydra_dir in sorted(path.rglob(".hydra")):
            job_dirs[hydra_dir.parent.resolve()] = None
        if (path / ".hydra").is_dir():
            job_dirs[path.resolve()] = None
    runs, failed = [], []
    for path in files:
        data = _read_results(path)
        if isinstance(data, str):
            failed.append(FailedRun(path.parent, "?", "?", data))
            continue
        run = Run(path, data)
        if data.get("status", "ok") == "failed":
            failed.append(
                FailedRun(run.run_dir, run.method, run.dataset, str(data.get("error", "failed")))
            )
        elif not isinstance(data.get("metrics"), dict):
            failed.append(FailedRun(run.run_dir, run.method, run.dataset, "no metrics recorded"))
        else:
            runs.append(run)
    with_results = {p.parent for p in files}
    for job_dir in job_dirs:
        if job_dir not in with_results:
            failed.append(
                FailedRun(
                    job_dir,
                    _job_choice(job_dir, "hydra.runtime.choices.compressor"),
                    _job_choice(job_dir, "dataset.name"),
                    "no results.json (crashed, still running, or evaluate=false)",
                )
            )
    if not runs and not failed:
        raise ReportError(f"no results.json below {', '.join(str(p) for p in paths)}")
    return runs, failed


def _job_choice(job_dir: Path, key: str) -> str:
    """A value of a Hydra job's saved config (``.hydra/hydra.yaml`` and ``config.yaml``)."""
    import yaml
    from omegaconf import OmegaConf

    for name in ("hydra.yaml", "config.yaml"):
        try:
            value = OmegaConf.select(OmegaConf.load(job_dir / ".hydra" / name), key)
        except (OSError, ValueError, yaml.YAMLError):  # missing or half-written: unknown
            value = None
        if value is not None:
            return str(value)
    return "?"


# ----------------------------------------------------------------------------- checks


def _slice_signature(run: Run) -> tuple[Any, ...]:
    ds = run.config.get("dataset", {})
    queries, docs = ds.get("max_eval_queries"), ds.get("max_eval_docs")
    seed = ds.get("seed", run.config.get("seed")) if (queries, docs) != (None, None) else None
    return (run.split, queries, docs, seed)


def _metric_signature(run: Run) -> tuple[Any, ...]:
    ev = run.config.get("evaluation", {})
    metrics = ev.get("metrics")
    return (tuple(metrics) if metrics is not None else None, ev.get("top_k"))


def _describe(groups: dict[tuple[Any, ...], list[Run]], names: tuple[str, ...]) -> str:
    lines = []
    for signature, members in groups.items():
        setting = ", ".join(f"{n}={v!r}" for n, v in zip(names, signature))
        lines.append(f"  {setting}: " + ", ".join(str(r.path) for r in members))
    return "\n".join(lines)


def check_comparable(runs: list[Run], metrics: list[str]) -> None:
    """Refuse runs that were not evaluated the same way.

    Parameters
    ----------
    runs : list of Run
    metrics : list of str
        The metrics to report; every run must have them.

    Raises
    ------
    ReportError
        Runs of one dataset differ in evaluation split or slice
        (``max_eval_queries``, ``max_eval_docs``, and the slicing seed when sliced),
        runs differ in metric settings (``evaluation.metrics``, ``evaluation.top_k``),
        or a run lacks a requested metric. The message names the runs of each group.
    """
    by_metric: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        by_metric[_metric_signature(run)].append(run)
    if len(by_metric) > 1:
        raise ReportError(
            "runs were evaluated with different metric settings; report them separately:\n"
            + _describe(by_metric, ("evaluation.metrics", "evaluation.top_k"))
        )
    by_dataset: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_dataset[run.dataset].append(run)
    for dataset, members in by_dataset.items():
        groups: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
        for run in members:
            groups[_slice_signature(run)].append(run)
        if len(groups) > 1:
            raise ReportError(
                f"runs on {dataset} were evaluated on different data (split or eval slice); "
                "report them separately:\n"
                + _describe(groups, ("split", "max_eval_queries", "max_eval_docs", "slice seed"))
            )
    for metric in metrics:
        lacking = [str(r.path) for r in runs if metric not in r.results["metrics"]]
        if lacking:
            raise ReportError(f"metric {metric!r} is missing from: {', '.join(lacking)}")


# ----------------------------------------------------------------------------- labels


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (empty dicts stay values)."""
    out: dict[str, Any] = {}
    for key, item in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out.update(_flatten(item, name))
        else:
            out[name] = item
    return out


def _ignored(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in IGNORED_KEYS)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _splitting_keys(values: list[dict[str, str]], base: list[tuple[Any, ...]]) -> list[str]:
    """A small set of keys that, with ``base``, separates runs as well as all keys do.

    Keys are tried from the most to the fewest distinct values; a key is kept when it
    splits a group of runs that ``base`` and the keys kept so far leave together, so a
    key that follows from another (``weighting`` from ``ablation``) or from the dataset
    or budget is left out.
    """
    keys = sorted(values[0], key=lambda k: (-len({v[k] for v in values}), k))
    kept: list[str] = []
    for key in keys:
        seen: dict[tuple[Any, ...], str] = {}
        for b, v in zip(base, values):
            group = b + tuple(v[k] for k in kept)
            if seen.setdefault(group, v[key]) != v[key]:
                kept.append(key)
                break
    return sorted(kept)


def distinguishing_settings(runs: list[Run]) -> dict[int, dict[str, str]]:
    """The config entries that tell runs of the same method apart.

    Parameters
    ----------
    runs : list of Run

    Returns
    -------
    dict
        ``id(run) -> {key: value}`` (keys without their ``compressor.`` prefix): the
        settings that differ between runs of the run's method on the same dataset and
        budget (see :func:`_splitting_keys`); paths, logging, the dataset and the
        budget themselves are never included, nor entries naming the run's directory.
        A key the run's config lacks is left out of its settings (the beir_table's
        ``agc`` next to the ablation's ``agc ablation=no_weight``): labels stay
        distinct, since a kept key that splits two runs is set in at least one.
    """
    by_method: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_method[run.method].append(run)
    out: dict[int, dict[str, str]] = {}
    for members in by_method.values():
        flats = []
        for run in members:
            own = str(run.results.get("output_dir") or run.run_dir)
            flat = {
                k: v
                for k, v in _flatten(run.config).items()
                if not _ignored(k) and not (isinstance(v, str) and own in v)
            }
            flats.append(flat)
        keys = sorted({k for flat in flats for k in flat})
        values = [{k: _format_value(f.get(k, _MISSING)) for k in keys} for f in flats]
        differing = [k for k in keys if len({v[k] for v in values}) > 1]
        base = [(r.dataset, repr(r.budget), repr(r.train_budget)) for r in members]
        kept = _splitting_keys([{k: v[k] for k in differing} for v in values], base)
        for run, v in zip(members, values):
            out[id(run)] = {k.removeprefix("compressor."): v[k] for k in kept if v[k] != _MISSING}
    return out


# Compressor options that size the output when there is no fixed budget
SIZING_KEYS = ("ratio", "spacing", "pool_factor")


def row_label(
    run: Run, settings: dict[str, str], budget_in_label: bool, train_budget: int | None = None
) -> str:
    """``method[@budget][ (train B)][ key=value ...]``; without a budget the sizing
    options (``ratio=4``, ``spacing=4``, ``pool_factor=2``) are always named.
    ``train_budget`` names a training budget the run does not record as a transfer
    (default: the run's own :attr:`Run.train_budget`)."""
    train_budget = run.train_budget if train_budget is None else train_budget
    label = run.method
    if budget_in_label and run.budget is not None:
        label += f"@{run.budget}"
    if run.budget is None:
        compressor = run.config.get("compressor") or {}
        sizing = {k: _format_value(compressor[k]) for k in SIZING_KEYS if compressor.get(k)}
        settings = {**sizing, **settings}
    if train_budget is not None:
        label += f" (train {train_budget})"
    if settings:
        label += " " + " ".join(f"{k}={v}" for k, v in settings.items())
    return label


def run_labels(run_dirs: list[str | Path]) -> list[str]:
    """The report's row label of each run directory, for tools that name runs.

    Runs of one method are told apart by the settings that differ between them (see
    :func:`distinguishing_settings`), so the ablation's three ``agc`` runs read
    ``agc ablation=no_weight`` and so on; the budget is named only when the runs'
    budgets differ.

    Parameters
    ----------
    run_dirs : list of str or Path
        Directories holding a ``results.json``.

    Returns
    -------
    list of str
        One label per directory, in order.

    Raises
    ------
    ReportError
        A ``results.json`` is missing or unreadable; names the file.
    """
    runs = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "results.json"
        data = _read_results(path)
        if isinstance(data, str):
            raise ReportError(f"{path}: {data}")
        runs.append(Run(path, data))
    settings = distinguishing_settings(runs)
    with_budget = len({run.budget for run in runs}) > 1
    return [row_label(run, settings[id(run)], with_budget) for run in runs]


def _budget_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    return (2, 0.0, str(value))


# ----------------------------------------------------------------------------- significance


def read_trec(path: Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file (``qid Q0 docid rank score tag``), gzipped if it ends in ``.gz``.

    Raises
    ------
    ReportError
        A line does not have six fields or a non-numeric score; names file and line.
    """
    run: dict[str, dict[str, float]] = defaultdict(dict)
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ReportError(
                    f"{path}:{lineno}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}"
                )
            try:
                run[parts[0]][parts[2]] = float(parts[4])
            except ValueError:
                raise ReportError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from None
    return dict(run)


class _Significance:
    """Loads qrels and runs once and compares runs against their baseline with ranx."""

    def __init__(
        self, test: str, alpha: float, permutations: int, seed: int, data_dir: Path | None
    ) -> None:
        self.test = test
        self.alpha = alpha
        self.permutations = permutations
        self.seed = seed
        self.data_dir = data_dir
        self.notes: list[str] = []
        self._qrels: dict[tuple[Any, ...], dict[str, dict[str, int]] | None] = {}
        self._runs: dict[Path, dict[str, dict[str, float]] | None] = {}

    def qrels(self, run: Run) -> dict[str, dict[str, int]] | None:
        """The judged qrels of the run's evaluation set (its split, sliced as configured)."""
        ds = run.config.get("dataset", {})
        data_dir = (
            self.data_dir or ds.get("data_dir") or run.config.get("paths", {}).get("data_dir")
        )
        key = (str(data_dir), run.dataset, _slice_signature(run))
        if key not in self._qrels:
            self._qrels[key] = self._load_qrels(run, data_dir)
        return self._qrels[key]

    def _load_qrels(
        self, run: Run, data_dir: str | Path | None
    ) -> dict[str, dict[str, int]] | None:
        if data_dir is None or run.split is None:
            self.notes.append(f"{run.dataset}: no data dir or split recorded, no significance test")
            return None
        ds = run.config.get("dataset", {})
        try:
            data = load_beir(Path(data_dir) / run.dataset, run.split)
        except (OSError, ValueError) as err:
            self.notes.append(
                f"{run.dataset}: qrels not loadable ({err}); no significance test "
                "(point --data-dir at the BEIR folder)"
            )
            return None
        data = slice_beir(
            data,
            ds.get("max_eval_queries"),
            ds.get("max_eval_docs"),
            ds.get("seed", run.config.get("seed", 0)),
        )
        return {q: d for q, d in data.qrels.items() if any(r > 0 for r in d.values())}

    def trec(self, run: Run) -> dict[str, dict[str, float]] | None:
        path = run.run_dir / "run.trec"
        if not path.is_file() and (run.run_dir / "run.trec.gz").is_file():
            path = run.run_dir / "run.trec.gz"
        if path not in self._runs:
            self._runs[path] = read_trec(path) if path.is_file() else None
            if self._runs[path] is None:
                self.notes.append(f"{run.run_dir}: no run.trec, no significance test")
        return self._runs[path]

    def compare(self, baseline: Run, run: Run, metrics: list[str]) -> dict[str, float] | None:
        """Two-sided p-values of ``run`` against ``baseline`` per metric (None: untestable).

        Judged queries missing from a run count as retrieving nothing, as in the
        metrics of ``results.json``.
        """
        from ranx import compare

        qrels = self.qrels(run)
        base, other = self.trec(baseline), self.trec(run)
        if qrels is None or base is None or other is None or not qrels:
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
                recomputed = report.results[name][metric]
                stored = source.results["metrics"][metric]
                if abs(recomputed - stored) > 1e-3:
                    note = (
                        f"{source.run_dir}: {metric} from run.trec and the qrels is "
                        f"{recomputed:.4f}, results.json says {stored:.4f} (different data?)"
                    )
                    if note not in self.notes:
                        self.notes.append(note)
        out = {}
        for metric in metrics:
            p = float(report.comparisons["baseline", "run"][metric]["p_value"])
            out[metric] = p
        return out


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """The tables of one report (see :func:`build_report`).

    Attributes
    ----------
    metrics : list of str
    rows, columns : list of str
        In display order.
    cells : dict of (row, column) to Cell
    baseline : str
        The row percentages and tests refer to.
    test : str
        ``"t-test"`` or ``"fisher"``.
    alpha : float
        Significance level of the marks.
    failed : list of FailedRun
    notes : list of str
        Superseded duplicates, data the tests could not use, disagreeing references.
    """

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

    # -- text of one cell
    def _value(self, cell: Cell | None, metric: str, latex: bool = False) -> str:
        if cell is None:
            return "--" if latex else "—"
        text = f"{cell.metrics[metric]:.{self.digits}f}"
        pct = cell.pct.get(metric)
        if pct is not None:
            text += f" ({pct:.1f}\\%)" if latex else f" ({pct:.1f}%)"
        if cell.significant.get(metric):
            text += "$^\\dagger$" if latex else MARK
        return text

    def _index(self, cell: Cell | None) -> str | None:
        if cell is None or cell.run is None:
            return None
        idx = cell.run.index
        ratio = idx.get("compression_ratio")
        reduction = idx.get("vector_reduction")
        per_doc = idx.get("vectors_per_doc")
        size = idx.get("index_bytes")
        return " · ".join(
            [
                f"{_num(ratio, '.2f')} / {_num(reduction, '.2f')}",
                _num(per_doc, ".1f"),
                _bytes(size),
            ]
        )

    def _legend(self) -> str:
        test = TEST_NAMES[self.test]
        return (
            f"(% of `{self.baseline}` on the same column; {MARK}: p < {self.alpha:g}, "
            f"{test} against `{self.baseline}`)"
        )

    def to_markdown(self) -> str:
        """All tables, the failed runs and the notes as Markdown."""
        header = "| method | " + " | ".join(self.columns) + " |"
        rule = "|---|" + "---:|" * len(self.columns)
        parts = ["# colcompress report", ""]
        runs = {id(c.run) for c in self.cells.values() if c.run is not None}
        parts.append(f"{len(runs)} runs, {len(self.failed)} failed.")
        for metric in self.metrics:
            parts += ["", f"## {metric} {self._legend()}", "", header, rule]
            for row in self.rows:
                values = [self._value(self.cells.get((row, c)), metric) for c in self.columns]
                parts.append(f"| {row} | " + " | ".join(values) + " |")
        index_rows = []
        for row in self.rows:
            values = [self._index(self.cells.get((row, c))) for c in self.columns]
            if any(v is not None for v in values):
                index_rows.append(f"| {row} | " + " | ".join(v or "—" for v in values) + " |")
        if index_rows:
            parts += [
                "",
                "## index (compression ratio / vector reduction · vectors per doc · size)",
                "",
                header,
                rule,
                *index_rows,
            ]
        if self.failed:
            parts += [
                "",
                "## failed runs",
                "",
                "| run | method | dataset | reason |",
                "|---" * 4 + "|",
            ]
            for f in self.failed:
                reason = " ".join(f.reason.split()).replace("|", "\\|")
                parts.append(f"| {f.run_dir} | {f.method} | {f.dataset} | {reason} |")
        if self.notes:
            parts += ["", "## notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts) + "\n"

    def to_csv(self) -> str:
        """One line per (row, column, metric) with every number behind the cell."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            [
                "row",
                "kind",
                "method",
                "dataset",
                "column",
                "budget",
                "train_budget",
                "metric",
                "value",
                "pct_of_baseline",
                "p_value",
                "significant",
                "compression_ratio",
                "vector_reduction",
                "vectors_per_doc",
                "index_bytes",
                "run_dir",
            ]
        )
        for row in self.rows:
            for column in self.columns:
                cell = self.cells.get((row, column))
                if cell is None:
                    continue
                run = cell.run
                idx = run.index if run else {}
                for metric in self.metrics:
                    writer.writerow(
                        [
                            row,
                            "run" if run else "reference",
                            run.method if run else row.removesuffix(" (ref)"),
                            cell.dataset,
                            column,
                            _csv(run.budget if run else None),
                            _csv(run.train_budget if run else None),
                            metric,
                            repr(cell.metrics[metric]),
                            _csv(cell.pct.get(metric)),
                            _csv(cell.p_value.get(metric)),
                            _csv(cell.significant.get(metric)),
                            _csv(idx.get("compression_ratio")),
                            _csv(idx.get("vector_reduction")),
                            _csv(idx.get("vectors_per_doc")),
                            _csv(idx.get("index_bytes")),
                            str(run.run_dir) if run else "",
                        ]
                    )
        return buffer.getvalue()

    def to_latex(self) -> str:
        """One booktabs ``table`` per metric, plus the index table."""
        test = TEST_NAMES[self.test]
        spec = "l" + "r" * len(self.columns)
        head = "method & " + " & ".join(_tex(c) for c in self.columns) + r" \\"
        parts = ["% generated by python -m colcompress.report"]
        for metric in self.metrics:
            caption = (
                f"{_tex(metric)} and percentage of {_tex(self.baseline)} on the same column; "
                f"$^\\dagger$: $p < {self.alpha:g}$, {_tex(test)} against {_tex(self.baseline)}."
            )
            body = [
                f"{_tex(row)} & "
                + " & ".join(
                    self._value(self.cells.get((row, c)), metric, latex=True) for c in self.columns
                )
                + r" \\"
                for row in self.rows
            ]
            parts += _tex_table(caption, spec, head, body)
        body = []
        for row in self.rows:
            values = [self._index(self.cells.get((row, c))) for c in self.columns]
            if any(v is not None for v in values):
                cells = [_tex(v).replace("·", "$\\cdot$") if v else "--" for v in values]
                body.append(f"{_tex(row)} & " + " & ".join(cells) + r" \\")
        if body:
            caption = "Index: compression ratio / vector reduction, vectors per document, size."
            parts += _tex_table(caption, spec, head, body)
        return "\n".join(parts) + "\n"

    def write(self, out_dir: Path, formats: list[str], name: str = "report") -> list[Path]:
        """Write ``<name>.md``, ``.csv``, ``.tex`` (those in ``formats``) atomically."""
        out_dir.mkdir(parents=True, exist_ok=True)
        render = {"md": self.to_markdown, "csv": self.to_csv, "tex": self.to_latex}
        written = []
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(render[fmt]())
            tmp.replace(path)
            written.append(path)
        return written


def _num(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _csv(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "--",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _tex_table(caption: str, spec: str, head: str, body: list[str]) -> list[str]:
    return [
        "",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        head,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]


def _row_order(label: str, run: Run | None, baseline: str, by_budget: bool) -> tuple[Any, ...]:
    if run is None:
        name = label.removesuffix(" (ref)")
        rank = REFERENCE_ORDER.index(name) if name in REFERENCE_ORDER else len(REFERENCE_ORDER)
        return (0, rank, name)
    if label == baseline:
        return (1,)
    method_rank = (
        METHOD_ORDER.index(run.method) if run.method in METHOD_ORDER else len(METHOD_ORDER)
    )
    return (
        2,
        method_rank,
        run.method,
        _budget_key(run.train_budget),
        _budget_key(run.budget if by_budget else None),
        label.count("="),  # the plain configuration before its variants
        _natural(run.run_dir),
        label,
    )


def _natural(path: Path) -> list[Any]:
    """Sort key putting job directories in sweep order (``2`` before ``10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def default_metrics(runs: list[Run]) -> list[str]:
    """``ndcg@10`` when every run has it, else the first metric of the first run."""
    if all("ndcg@10" in r.results["metrics"] for r in runs):
        return ["ndcg@10"]
    return [next(iter(runs[0].results["metrics"]))]


def _fill_transfer_rows(
    chosen: dict[tuple[str, str], Run], runs: list[Run], settings: dict[int, dict[str, str]]
) -> None:
    """Put a model tested at the budget it was trained with into its transfer row too.

    A run trained at ``B`` and re-indexed at other test budgets forms the row
    ``method (train B)``; the run trained and tested at ``B`` is that row's ``@B``
    cell (the paper's Table 6 layout), unless a run with ``test_budget=B`` fills it.
    A plain row left with nothing but such runs would only repeat them and is dropped.
    """
    transfers = {
        (r.method, r.dataset, tuple(settings[id(r)].items()), r.train_budget)
        for r in runs
        if r.train_budget is not None
    }
    moved: dict[str, list[bool]] = defaultdict(list)
    for (row, column), run in list(chosen.items()):
        own = (run.method, run.dataset, tuple(settings[id(run)].items()), run.budget)
        in_transfer = run.train_budget is None and own in transfers
        moved[row].append(in_transfer)
        if in_transfer:
            label = row_label(run, settings[id(run)], False, train_budget=run.budget)
            chosen.setdefault((label, column), run)
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
) -> Report:
    """Collect the runs below ``paths`` into tables.

    Parameters
    ----------
    paths : list of str or Path
        Run directories, sweep directories or ``results.json`` files.
    metrics : list of str or None
        Metrics to tabulate (None: :func:`default_metrics`).
    baseline : str
        Row label of the 100% reference (default ``none``: the uncompressed model);
        a dataset without that row gets no percentages and no tests.
    test : str
        ``"t-test"`` (two-sided paired t-test) or ``"fisher"`` (randomization test).
    alpha : float
        A cell is marked when its p-value against the baseline is below ``alpha``.
    permutations, seed : int
        Of Fisher's randomization test.
    budget_columns : bool
        Columns are dataset x budget (``nfcorpus@32``) instead of datasets, and the
        budget leaves the row labels. A model trained at ``B`` and indexed at other
        test budgets is the row ``method (train B)``, its ``@B`` cell the run trained
        and tested at ``B`` (Table 6).
    data_dir : str, Path or None
        BEIR folder for the qrels (None: the one recorded in each run's config).
    digits : int
        Decimals of the metric values in Markdown and LaTeX.

    Returns
    -------
    Report

    Raises
    ------
    ReportError
        Nothing found, unknown test, or runs that may not be compared (see
        :func:`check_comparable`).
    """
    if test not in TESTS:
        raise ReportError(f"--test must be one of {', '.join(TESTS)}, got {test!r}")
    runs, failed = find_runs(paths)
    notes: list[str] = []
    if not runs:
        return Report(metrics or [], [], [], {}, baseline, test, alpha, failed, notes, digits)
    metrics = metrics or default_metrics(runs)
    check_comparable(runs, metrics)
    settings = distinguishing_settings(runs)

    # -- one run per (row, column): the newest wins, older duplicates are noted
    def column_of(dataset: str, budget: Any) -> str:
        return f"{dataset}@{budget}" if budget_columns and budget is not None else dataset

    chosen: dict[tuple[str, str], Run] = {}
    dupes: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.path.stat().st_mtime, str(r.path))):
        key = (
            row_label(run, settings[id(run)], not budget_columns),
            column_of(run.dataset, run.budget),
        )
        if key in chosen:
            dupes[key].append(chosen[key])
        chosen[key] = run
    if budget_columns:
        _fill_transfer_rows(chosen, runs, settings)
    for (row, column), older in dupes.items():
        notes.append(
            f"{row} on {column}: {len(older) + 1} runs, kept the newest "
            f"{chosen[row, column].run_dir}; superseded: "
            + ", ".join(str(r.run_dir) for r in older)
        )

    datasets = sorted({r.dataset for r in runs})
    budgets = {
        d: sorted(
            {r.budget for r in runs if r.dataset == d and r.budget is not None}, key=_budget_key
        )
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
    row_runs: dict[str, Run | None] = {}
    for (row, _), run in chosen.items():
        for column in columns_of(run.dataset, run.budget):
            cells[row, column] = Cell(row, column, run.dataset, dict(run.results["metrics"]), run)
        first = row_runs.get(row)
        if first is None or _natural(run.run_dir) < _natural(first.run_dir):
            row_runs[row] = run  # the row sorts by its first job in sweep order

    # -- reference rows: the stored baselines, preferring the baseline run's copy
    for dataset in datasets:
        members = sorted(
            (r for r in chosen.values() if r.dataset == dataset),
            key=lambda r: row_label(r, settings[id(r)], not budget_columns) != baseline,
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
                    note = (
                        f"{dataset}: runs store different {name} baselines; "
                        f"kept {members[0].run_dir}'s"
                    )
                    if note not in notes:
                        notes.append(note)
        for name, values in refs.items():
            row = f"{name} (ref)"
            row_runs.setdefault(row, None)
            for column in columns_of(dataset, None):
                cells[row, column] = Cell(row, column, dataset, values)

    # -- percentages and significance against the baseline row of each column
    tester = _Significance(test, alpha, permutations, seed, Path(data_dir) if data_dir else None)
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
        p_values = tested[key]
        if p_values is None:
            continue
        for metric in metrics:
            p = p_values[metric]
            cell.p_value[metric] = None if math.isnan(p) else p
            cell.significant[metric] = not math.isnan(p) and p < alpha
    notes += tester.notes

    rows = sorted(row_runs, key=lambda r: _row_order(r, row_runs[r], baseline, not budget_columns))
    return Report(metrics, rows, columns, cells, baseline, test, alpha, failed, notes, digits)


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colcompress.report",
        description="Tables (Markdown, CSV, LaTeX) from colcompress run directories.",
    )
    parser.add_argument("paths", nargs="+", help="run dirs, sweep dirs or results.json files")
    parser.add_argument(
        "--metric",
        action="append",
        help="metric to tabulate (repeat or comma-separate; default ndcg@10)",
    )
    parser.add_argument(
        "--baseline", default="none", help="row label of the 100%% reference (default: none)"
    )
    parser.add_argument("--test", choices=sorted(TESTS), default="t-test")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    parser.add_argument("--permutations", type=int, default=1000, help="Fisher test permutations")
    parser.add_argument("--seed", type=int, default=42, help="Fisher test seed")
    parser.add_argument(
        "--budget-columns", action="store_true", help="columns are dataset x budget"
    )
    parser.add_argument("--data-dir", help="BEIR folder for the qrels (default: as recorded)")
    parser.add_argument("--digits", type=int, default=3, help="decimals of metric values")
    parser.add_argument("--out", help="output folder (default: the first path, if a folder)")
    parser.add_argument("--format", default="md,csv,tex", help="files to write: md,csv,tex")
    parser.add_argument("--name", default="report", help="file name stem (report)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Build the report, print its Markdown, write the files; 0 on success, 2 on refusal."""
    args = _parser().parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        print(
            f"colcompress.report: error: unknown --format {unknown}; use md,csv,tex",
            file=sys.stderr,
        )
        return 2
    metrics = [m.strip() for item in args.metric or [] for m in item.split(",") if m.strip()]
    try:
        report = build_report(
            args.paths,
            metrics=metrics or None,
            baseline=args.baseline,
            test=args.test,
            alpha=args.alpha,
            permutations=args.permutations,
            seed=args.seed,
            budget_columns=args.budget_columns,
            data_dir=args.data_dir,
            digits=args.digits,
        )
    except ReportError as err:
        print(f"colcompress.report: error: {err}", file=sys.stderr)
        return 2
    print(report.to_markdown(), end="")
    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    written = report.write(out, formats, args.name)
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return 0 if report.rows else 1


if __name__ == "__main__":
    sys.exit(main())
