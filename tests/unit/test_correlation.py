"""Utilization across runs: Pearson correlation against numpy/scipy, figures, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from colcompress.analysis import plots
from colcompress.analysis.cli import main
from colcompress.analysis.correlation import correlate, short_labels
from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.evaluation.plots import save_png
from colcompress.evaluation.utilization import UtilizationStats, coefficient_of_variation, gini

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STRENGTHS = [[1.0, 1.0, 0.5], [2.0, 1.0, 0.2], [1.0, 0.1, 0.1], [1.0, 0.9, 0.8]]
NDCG = [0.40, 0.31, 0.12, 0.45]
METHODS = ["agc", "hpool", "memtok", "agc"]


def _stats_with(strength: list[float]) -> dict:
    return UtilizationStats(
        strength=strength,
        strength_sum=strength,
        wins=[1] * len(strength),
        position_counts=[1] * len(strength),
        cv=coefficient_of_variation(strength),
        gini=gini(strength),
        num_pairs=10,
        num_match_records=100,
        index_usage=0.25,
        similarity=[[1.0, 0.2], [0.2, None]],
    ).to_dict()


def _make_runs(tmp_path: Path, budgets: list[int | None] | None = None) -> list[Path]:
    dirs = []
    for k, (strength, ndcg) in enumerate(zip(STRENGTHS, NDCG, strict=True)):
        run = tmp_path / f"run{k}"
        run.mkdir(parents=True)
        inv_cv = 1 / coefficient_of_variation(strength)
        results = {
            "method": METHODS[k],
            "index": {"budget": (budgets or [32, 32, 32, 5])[k]},
            "metrics": {"ndcg@10": ndcg, "recall@1": 3.0 * inv_cv + 0.1, "mrr@10": 0.2},
            "utilization": _stats_with(strength),
        }
        (run / "results.json").write_text(json.dumps(results))
        dirs.append(run)
    return dirs


def _records(dirs: list[Path]) -> list[RunRecord]:
    return [RunRecord.from_dir(d) for d in dirs]


def test_correlate_matches_numpy_and_scipy(tmp_path):
    table = correlate(_records(_make_runs(tmp_path)))
    assert table.metrics == ["ndcg@10", "recall@1", "mrr@10"]
    inv_cv = [1 / coefficient_of_variation(s) for s in STRENGTHS]
    inv_gini = [1 / gini(s) for s in STRENGTHS]
    assert table.get("recall@1", "cv").r == pytest.approx(1.0)  # exactly linear in 1/CV
    for x, evenness in ((inv_cv, "cv"), (inv_gini, "gini")):
        c = table.get("ndcg@10", evenness)
        r = np.corrcoef(x, NDCG)[0, 1]
        t = r * math.sqrt(2 / (1 - r**2))  # n - 2 = 2 degrees of freedom
        assert c.r == pytest.approx(r)
        assert c.p == pytest.approx(2 * sps.t.sf(abs(t), 2))
        assert c.n == 4
    assert math.isnan(table.get("mrr@10", "cv").r)  # constant metric
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| Metric | 1/CV Pearson r")
    assert "| recall@1 | 1.000** | <0.001 |" in md
    assert "| mrr@10 | n/a | n/a |" in md
    assert "| agc@32 |" in table.runs_markdown() and "25.00%" in table.runs_markdown()


def test_correlate_errors_name_the_run(tmp_path):
    dirs = _make_runs(tmp_path)
    with pytest.raises(AnalysisError, match="at least 3 runs"):
        correlate(_records(dirs[:2]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match=r"empty/results.json: unreadable"):
        RunRecord.from_dir(tmp_path / "empty")
    results = json.loads((dirs[0] / "results.json").read_text())
    del results["utilization"]
    (dirs[0] / "results.json").write_text(json.dumps(results))
    with pytest.raises(AnalysisError, match=r"run0/results.json: lacks 'utilization'"):
        correlate(_records(dirs))
    with pytest.raises(AnalysisError, match=r"run1/results.json: metrics \['map'\] missing"):
        correlate(_records(dirs[1:]), metrics=["map"])
    with pytest.raises(AnalysisError, match="2 labels for 3 runs"):
        correlate(_records(dirs[1:]), labels=["a", "b"])


def test_labels_drop_a_shared_budget_and_name_duplicates(tmp_path):
    runs = _records(_make_runs(tmp_path, budgets=[32, 32, 32, 32]))
    assert short_labels(runs) == ["agc (run0)", "hpool", "memtok", "agc (run3)"]
    assert short_labels(runs[:3]) == ["agc", "hpool", "memtok"]
    mixed = _records(_make_runs(tmp_path / "mixed"))
    assert short_labels(mixed) == ["agc@32", "hpool@32", "memtok@32", "agc@5"]
    table = correlate(mixed, labels=["a", "b", "c", "d"])
    assert table.labels == ["a", "b", "c", "d"] and "| d |" in table.runs_markdown()


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_plots_write_png(tmp_path):
    stats = UtilizationStats.from_dict(_stats_with([1.0, 0.5, 0.2]))
    fig = plots.correlation_figure([1, 2, 3], [0.1, 0.3, 0.2], ["a", "b", "c"])
    _assert_png(save_png(fig, tmp_path / "c.png"))
    grid = {"agc": stats, "hpool": UtilizationStats.from_dict(_stats_with([0.3, 0.3, 0.1]))}
    _assert_png(save_png(plots.utilization_grid_figure(grid), tmp_path / "sub" / "grid.png"))
    with pytest.raises(ValueError, match="2 labels for 3 points"):
        plots.correlation_figure([1, 2, 3], [1, 2, 3], ["a", "b"])


def test_cli_main(tmp_path, capsys):
    dirs = [str(d) for d in _make_runs(tmp_path)]
    out = tmp_path / "out"
    assert main(["correlate", *dirs, "--out", str(out), "--metrics", "ndcg@10"]) == 0
    printed = capsys.readouterr().out
    assert "| ndcg@10 |" in printed and "recall@1" not in printed.split("\n\n")[0]
    for name in ("correlation.md", "correlation_inv_cv.png", "correlation_inv_gini.png"):
        assert (out / name).is_file()
    _assert_png(out / "correlation_inv_cv.png")
    assert main(["figure", *dirs[:2], "--out", str(tmp_path / "fig3.png")]) == 0
    _assert_png(tmp_path / "fig3.png")
    assert main(["correlate", *dirs[:2]]) == 1
    assert "at least 3 runs" in capsys.readouterr().err


def test_cli_names_runs_by_their_recorded_label(tmp_path, capsys):
    """The ablation's figure and table: agc runs told apart by the label they recorded."""
    dirs = _make_runs(tmp_path, budgets=[32, 32, 32, 32])
    for run_dir, ablation in zip(dirs, ["none", "no_weight", "no_select", "no_cluster"]):
        results = json.loads((run_dir / "results.json").read_text())
        results["label"] = f"agc@32 ablation={ablation}"
        (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["correlate", *map(str, dirs), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    for ablation in ["none", "no_weight", "no_select", "no_cluster"]:
        assert f"| agc ablation={ablation} |" in printed


@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    dirs = [str(d) for d in _make_runs(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "colcompress.report", "correlate", *dirs, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| ndcg@10 |" in proc.stdout
    assert (tmp_path / "correlation_inv_gini.png").is_file()
