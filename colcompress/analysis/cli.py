"""``colcompress-report``: tables, utilization correlation and figures from runs.

::

    colcompress-report RUN_OR_SWEEP_DIRS... [--metric ndcg@10,recall@10] [--out DIR]
    colcompress-report correlate RUN_DIRS... [--metrics ndcg@10 recall@10] --out DIR
    colcompress-report figure RUN_DIRS... --out utilization.png
    colcompress-report patch-grid IMAGE_RUN_DIRS... --out patch_grid.png

``python -m colcompress.report`` is the same command. The modules that read runs
(ranx, matplotlib, torch through the utilization statistics) are imported once the
arguments are parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from colcompress.analysis import render

PROG = "colcompress-report"


def _table_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tables (Markdown, CSV, LaTeX) from colcompress run directories; "
        f"'{PROG} correlate|figure|patch-grid -h' for the utilization analysis.",
    )
    parser.add_argument("paths", nargs="+", help="run dirs, sweep dirs or results.json files")
    add = parser.add_argument
    add("--metric", action="append", help="metric(s) to tabulate, comma-separated (ndcg@10)")
    add("--baseline", default="none", help="row label of the 100%% reference (default: none)")
    add("--test", choices=sorted(render.TESTS), default="t-test")
    add("--alpha", type=float, default=0.05, help="significance level (0.05)")
    add("--permutations", type=int, default=1000, help="Fisher test permutations")
    add("--seed", type=int, default=42, help="Fisher test seed")
    add("--budget-columns", action="store_true", help="columns are dataset x budget")
    average = "an average column over the datasets (default: when a run evaluated several)"
    add("--average", action=argparse.BooleanOptionalAction, default=None, help=average)
    add("--order", default="", help="methods in row order, comma-separated (default: as found)")
    add("--data-dir", help="BEIR folder for the qrels (default: as recorded)")
    add("--digits", type=int, default=3, help="decimals of metric values")
    published = "CSV method,dataset,budget,metric,pct of published %% of the uncompressed model"
    add("--published", help=published + ", set beside each run's %%")
    add("--out", help="output folder (default: the first path, if a folder)")
    add("--format", default="md,csv,tex", help="files to write: md,csv,tex")
    add("--name", default="report", help="file name stem (report)")
    return parser


def _utilization_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Index utilization across runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    cor = sub.add_parser("correlate", help="Pearson r of metrics vs 1/CV and 1/Gini (>= 3 runs)")
    cor.add_argument("run_dirs", nargs="+", type=Path, help="run dirs with results.json")
    cor.add_argument("--out", type=Path, default=Path("."), help="where to write md + PNGs")
    cor.add_argument("--metrics", nargs="+", help="metric names (default: all shared)")
    fig = sub.add_parser("figure", help="strength bars over similarity heatmaps, one column/run")
    fig.add_argument("run_dirs", nargs="+", type=Path, help="run dirs with results.json")
    fig.add_argument("--out", type=Path, default=Path("utilization.png"), help="PNG path")
    grid = sub.add_parser(
        "patch-grid", help="strength over the patch grid of uncompressed image runs, one panel/run"
    )
    grid.add_argument("run_dirs", nargs="+", type=Path, help="run dirs with results.json")
    grid.add_argument("--out", type=Path, default=Path("patch_grid.png"), help="PNG path")
    return parser


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _tables(argv: list[str]) -> int:
    args = vars(_table_parser().parse_args(argv))
    from colcompress.analysis.records import AnalysisError
    from colcompress.analysis.tables import build_report

    formats, out, name = _split([args.pop("format")]), args.pop("out"), args.pop("name")
    # the other arguments are build_report's, by name
    unknown = sorted(set(formats) - set(render.FORMATS))
    if unknown:
        print(f"{PROG}: error: unknown --format {unknown}; use md,csv,tex", file=sys.stderr)
        return 2
    try:
        metrics, order = _split(args.pop("metric")) or None, _split([args.pop("order")])
        report = build_report(metrics=metrics, order=order, **args)
    except AnalysisError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(render.markdown(report), end="")
    first = Path(args["paths"][0])
    out = Path(out) if out else (first if first.is_dir() else first.parent)
    written = render.write(report, out, formats, name)
    print("\nwritten: " + ", ".join(str(p) for p in written))
    return 0 if report.rows else 1


def _utilization(argv: list[str]) -> int:
    args = _utilization_parser().parse_args(argv)
    from colcompress.analysis.correlation import correlate, short_labels, write_correlation
    from colcompress.analysis.plots import patch_grid_figure, utilization_grid_figure
    from colcompress.analysis.records import AnalysisError, RunRecord
    from colcompress.evaluation.plots import save_png

    try:
        runs = [RunRecord.from_dir(d) for d in args.run_dirs]
        if args.command == "correlate":
            table = correlate(runs, args.metrics)
            print(table.to_markdown() + "\n\n" + table.runs_markdown())
            written = write_correlation(table, args.out)
        elif args.command == "patch-grid":
            written = [save_png(patch_grid_figure(dict(zip(short_labels(runs), runs))), args.out)]
        else:
            stats = {label: r.utilization for label, r in zip(short_labels(runs), runs)}
            written = [save_png(utilization_grid_figure(stats), args.out)]
    except (OSError, AnalysisError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 1 when nothing was reported, 2 on refusal."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("correlate", "figure", "patch-grid"):
        return _utilization(argv)
    return _tables(argv)
