"""A report's tables as Markdown, CSV (one line per cell and metric) and LaTeX (booktabs)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colcompress.atomic import write_text_atomic

if TYPE_CHECKING:
    from colcompress.analysis.tables import Cell, Report

FORMATS = ("md", "csv", "tex")
TEST_NAMES = {"t-test": "paired t-test", "fisher": "Fisher's randomization test"}
TESTS = tuple(TEST_NAMES)  # the CLI names of the tests of analysis.significance
MARK = "†"
CSV_COLUMNS = (
    "row kind method dataset column budget train_budget metric value pct_of_baseline p_value "
    "significant compression_ratio vector_reduction vectors_per_doc index_bytes run_dir "
    "published_pct"
).split()
_TEX_ESCAPES = str.maketrans(
    {c: "\\" + c for c in "&%$#_{}"}
    | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    | {"—": "--"}
)


def _tex(text: str) -> str:
    return str(text).translate(_TEX_ESCAPES)


def _value(report: Report, cell: Cell | None, metric: str, latex: bool) -> str:
    """``0.333 (95.6%, paper 97.0%)†``: the metric, its percentage of the baseline, the
    published percentage (with ``--published``), the mark."""
    if cell is None:
        return "--" if latex else "—"
    percent = "\\%" if latex else "%"
    pct, published = cell.pct.get(metric), cell.published.get(metric)
    shares = [] if pct is None else [f"{pct:.1f}{percent}"]
    shares += [] if published is None else [f"paper {published:.1f}{percent}"]
    text = f"{cell.metrics[metric]:.{report.digits}f}"
    if shares:
        text += f" ({', '.join(shares)})"
    if cell.significant.get(metric):
        text += "$^\\dagger$" if latex else MARK
    return text


def _num(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _index(cell: Cell | None) -> str | None:
    """``ratio / reduction · vectors per doc · size`` of the run's index."""
    if cell is None or cell.run is None:
        return None
    idx = cell.run.index
    ratio = (
        f"{_num(idx.get('compression_ratio'), '.2f')} / {_num(idx.get('vector_reduction'), '.2f')}"
    )
    return f"{ratio} · {_num(idx.get('vectors_per_doc'), '.1f')} · {_bytes(idx.get('index_bytes'))}"


def _grids(report: Report, latex: bool) -> list[tuple[str | None, list[tuple[str, list[str]]]]]:
    """``(metric, rows)`` per metric, then ``(None, rows)`` of the index for the rows with
    an index; a row is its label and its cells' text."""
    cells = {row: [report.cells.get((row, c)) for c in report.columns] for row in report.rows}
    grids: list[tuple[str | None, list[tuple[str, list[str]]]]] = [
        (metric, [(row, [_value(report, c, metric, latex) for c in cells[row]]) for row in cells])
        for metric in report.metrics
    ]
    dash = "--" if latex else "—"
    rows = [
        (row, [(_tex(v).replace("·", "$\\cdot$") if latex else v) if v else dash for v in values])
        for row, values in ((row, [_index(c) for c in cells[row]]) for row in cells)
        if any(values)
    ]
    return grids + ([(None, rows)] if rows else [])


def _published_note(report: Report, metric: str, latex: bool) -> str:
    """``; paper: the published % (<file>)`` when a cell of ``metric`` has one, else ''."""
    if report.published is None or not any(metric in c.published for c in report.cells.values()):
        return ""
    if latex:
        return f"; paper: the published \\% ({_tex(report.published.name)})"
    return f"; paper: the published % ({report.published.name})"


def markdown(report: Report) -> str:
    """All tables, the failed runs and the notes as Markdown."""

    def legend(metric: str) -> str:
        return (
            f"(% of `{report.baseline}` on the same column"
            f"{_published_note(report, metric, latex=False)}; {MARK}: p < {report.alpha:g}, "
            f"{TEST_NAMES[report.test]} against `{report.baseline}`)"
        )

    runs = {c.run.path for c in report.cells.values() if c.run is not None}
    parts = ["# colcompress report", "", f"{len(runs)} runs, {len(report.failed)} failed."]
    for metric, rows in _grids(report, latex=False):
        title = (
            f"{metric} {legend(metric)}"
            if metric
            else "index (compression ratio / vector reduction · vectors per doc · size)"
        )
        parts += ["", f"## {title}", "", "| method | " + " | ".join(report.columns) + " |"]
        parts.append("|---|" + "---:|" * len(report.columns))
        parts += [f"| {row} | " + " | ".join(values) + " |" for row, values in rows]
    if report.failed:
        parts += ["", "## failed runs", "", "| run | method | dataset | reason |", "|---" * 4 + "|"]
        for f in report.failed:
            reason = " ".join(f.reason.split()).replace("|", "\\|")
            parts.append(f"| {f.run_dir} | {f.method} | {f.dataset} | {reason} |")
    if report.notes:
        parts += ["", "## notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(parts) + "\n"


def _csv(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def csv_text(report: Report) -> str:
    """One line per (row, column, metric) with every number behind the cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        for column in report.columns:
            cell = report.cells.get((row, column))
            if cell is None:
                continue
            run = cell.run
            idx = run.index if run else {}
            for metric in report.metrics:
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
                        *(_csv(idx.get(k)) for k in CSV_COLUMNS[12:16]),
                        str(run.run_dir) if run else "",
                        _csv(cell.published.get(metric)),
                    ]
                )
    return buffer.getvalue()


def latex(report: Report) -> str:
    """One booktabs ``table`` per metric, plus the index table."""
    head = "method & " + " & ".join(_tex(c) for c in report.columns) + r" \\"
    base = _tex(report.baseline)
    parts = ["% generated by python -m colcompress.report"]
    for metric, rows in _grids(report, latex=True):
        caption = (
            f"{_tex(metric)} and percentage of {base} on the same column"
            f"{_published_note(report, metric, latex=True)}; $^\\dagger$: "
            f"$p < {report.alpha:g}$, {_tex(TEST_NAMES[report.test])} against {base}."
            if metric
            else "Index: compression ratio / vector reduction, vectors per document, size."
        )
        parts += ["", r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}"]
        parts += [rf"\begin{{tabular}}{{l{'r' * len(report.columns)}}}", r"\toprule", head]
        parts += [r"\midrule"] + [f"{_tex(row)} & " + " & ".join(v) + r" \\" for row, v in rows]
        parts += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(parts) + "\n"


def write(report: Report, out_dir: Path, formats: list[str], name: str = "report") -> list[Path]:
    """Write ``<name>.md``, ``.csv``, ``.tex`` (those in ``formats``) atomically."""
    render = {"md": markdown, "csv": csv_text, "tex": latex}
    return [write_text_atomic(render[f](report), out_dir / f"{name}.{f}") for f in formats]
