"""The results report on hand-made run directories with known p-values."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from colcompress.analysis import render
from colcompress.analysis.cli import main
from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.analysis.significance import Significance, fisher_randomization, read_trec
from colcompress.analysis.tables import build_report
from colcompress.data.splits import load_splits
from colcompress.evaluation.metrics import compute_metrics, per_query_scores, write_trec_run

N = 20  # queries, one relevant document each
METRICS = ["ndcg@10", "recall@10"]
BASE_RANKS = [1] * 15 + [3] * 5  # rank of each query's relevant document
STRONG_RANKS = [2, None] * 10  # far worse everywhere: p << 0.05
WEAK_RANKS = [2] + BASE_RANKS[1:]  # one query differs: t = 1 exactly, p = 0.33


def _ndcg(rank: int | None) -> float:
    return 0.0 if rank is None or rank > 10 else 1.0 / math.log2(rank + 1)


def _qrels() -> dict[str, dict[str, int]]:
    return {f"q{i}": {f"rel{i}": 1} for i in range(N)}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A BEIR folder with one tiny dataset ``toy`` (test and dev splits)."""
    root = tmp_path / "beir"
    toy = root / "toy"
    (toy / "qrels").mkdir(parents=True)
    docs = [f"rel{i}" for i in range(N)] + [f"junk{j}" for j in range(12)]
    (toy / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": f"text of {d}"}) + "\n" for d in docs)
    )
    (toy / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in range(N))
    )
    rows = "".join(f"q{i}\trel{i}\t1\n" for i in range(N))
    for split in ("test", "dev"):
        (toy / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root


def _ranking(ranks: list[int | None]) -> dict[str, dict[str, float]]:
    """Ten documents per query with the relevant one at the given 1-based rank (or absent)."""
    run = {}
    for i, rank in enumerate(ranks):
        ranked = [f"junk{j}" for j in range(10)]
        if rank is not None:
            ranked.insert(rank - 1, f"rel{i}")
        run[f"q{i}"] = {doc: float(100 - pos) for pos, doc in enumerate(ranked[:10])}
    return run


def write_run(
    run_dir: Path,
    data_dir: Path,
    method: str,
    ranks: list[int | None],
    budget: int | None = 32,
    split: str = "test",
    compressor: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    status: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """A run directory as a job writes it: results.json + run.trec."""
    run_dir.mkdir(parents=True)
    run = _ranking(ranks)
    write_trec_run(run, run_dir / "run.trec")
    config = {
        "seed": 42,
        "budget": budget or 32,
        "test_budget": None,
        "paths": {"data_dir": str(data_dir), "output_dir": str(run_dir)},
        "dataset": {
            "name": "toy",
            "data_dir": str(data_dir),
            "eval_split": split,
            "max_eval_queries": None,
            "max_eval_docs": None,
            "seed": 42,
            **(dataset or {}),
        },
        "evaluation": {"metrics": METRICS, "top_k": 100, **(evaluation or {})},
        "compressor": {"_target_": f"x.{method}", **(compressor or {})},
        "index": {"_target_": "x.Flat", "index_dir": str(run_dir / "index")},
    }
    results = {
        "config": config,
        "method": method,
        "dataset": "toy",
        "split": split,
        "output_dir": str(run_dir),
        "baselines": {"bm25": {"metrics": {"ndcg@10": 0.25, "recall@10": 0.5}}},
        "metrics": compute_metrics(_qrels(), run, METRICS),
        "index": {
            "budget": budget,
            "train_budget": budget,
            "compression_ratio": None if budget is None else 1 - budget / 64,
            "vector_reduction": 0.1 if budget is None else 1 - budget / 64,
            "vectors_per_doc": 57.0 if budget is None else float(budget),
            "index_bytes": 4096 if budget is None else 64 * budget,
        },
    }
    if label:
        results["label"] = label
    if status:
        results["status"] = status
        results["error"] = "RuntimeError: CUDA out of memory"
    (run_dir / "results.json").write_text(json.dumps(results))
    return results


@pytest.fixture
def sweep(tmp_path: Path, data_dir: Path) -> Path:
    root = tmp_path / "sweep"
    write_run(root / "0", data_dir, "none", BASE_RANKS, budget=None)
    write_run(root / "1", data_dir, "agc", STRONG_RANKS)
    write_run(root / "2", data_dir, "hpool", WEAK_RANKS)
    return root


def _csv_rows(report) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (r["row"], r["metric"]): r for r in csv.DictReader(io.StringIO(render.csv_text(report)))
    }


def test_percentages_and_t_test_marks(sweep: Path):
    report = build_report([sweep], metrics=METRICS, order=["none", "hpool"])
    assert report.rows == ["bm25 (ref)", "none", "hpool@32", "agc@32"]
    assert report.columns == ["toy"]
    base = sum(_ndcg(r) for r in BASE_RANKS) / N
    strong = sum(_ndcg(r) for r in STRONG_RANKS) / N
    weak = sum(_ndcg(r) for r in WEAK_RANKS) / N
    cells = report.cells
    assert cells["none", "toy"].pct["ndcg@10"] == pytest.approx(100.0)
    assert cells["agc@32", "toy"].pct["ndcg@10"] == pytest.approx(100 * strong / base)
    assert cells["hpool@32", "toy"].pct["ndcg@10"] == pytest.approx(100 * weak / base)
    assert cells["bm25 (ref)", "toy"].pct["ndcg@10"] == pytest.approx(100 * 0.25 / base)
    # p-values against scipy on the per-query nDCG@10
    expected_strong = stats.ttest_rel(
        [_ndcg(r) for r in BASE_RANKS], [_ndcg(r) for r in STRONG_RANKS]
    ).pvalue
    rows = _csv_rows(report)
    assert float(rows["agc@32", "ndcg@10"]["p_value"]) == pytest.approx(expected_strong)
    assert float(rows["hpool@32", "ndcg@10"]["p_value"]) == pytest.approx(2 * stats.t.sf(1, N - 1))
    assert rows["agc@32", "ndcg@10"]["significant"] == "true"
    assert rows["hpool@32", "ndcg@10"]["significant"] == "false"
    assert rows["none", "ndcg@10"]["p_value"] == "" and rows["bm25 (ref)", "ndcg@10"]["kind"]
    # recall@10: the weak run retrieves everything the baseline does -> identical, no mark
    assert rows["hpool@32", "recall@10"]["p_value"] == ""
    assert rows["agc@32", "recall@10"]["significant"] == "true"
    ndcg_table = render.markdown(report).split("## ndcg@10")[1].split("## recall@10")[0]
    line = {ln.split("|")[1].strip(): ln for ln in ndcg_table.splitlines() if ln.startswith("| ")}
    assert f"{strong:.3f} ({100 * strong / base:.1f}%)†" in line["agc@32"]
    assert f"{weak:.3f} ({100 * weak / base:.1f}%) " in line["hpool@32"]
    assert "†" not in line["hpool@32"] and "†" not in line["none"]
    assert not [n for n in report.notes if "different data" in n]  # trec reproduces metrics


def test_fisher_randomization_marks(sweep: Path):
    report = build_report([sweep], metrics=["ndcg@10"], test="fisher", permutations=2000)
    strong, weak = report.cells["agc@32", "toy"], report.cells["hpool@32", "toy"]
    assert strong.significant["ndcg@10"] and strong.p_value["ndcg@10"] < 0.01
    # one differing query: swapping it keeps |difference|, so every permutation ties
    assert not weak.significant["ndcg@10"] and weak.p_value["ndcg@10"] == pytest.approx(1.0)
    assert "Fisher" in render.markdown(report) and "Fisher" in render.latex(report)


def test_t_test_p_values_are_scipys_on_the_per_query_scores(sweep: Path):
    tester = Significance("t-test", 0.05, 1000, 42, None)
    base = RunRecord.from_dir(sweep / "0")
    control = per_query_scores(_qrels(), read_trec(base.ranking), METRICS)
    in_id_order = [_ndcg(BASE_RANKS[int(q[1:])]) for q in sorted(_qrels())]
    assert control["ndcg@10"] == pytest.approx(in_id_order)
    for job in "12":  # agc (far worse), hpool (one query worse, recall@10 identical)
        run = RunRecord.from_dir(sweep / job)
        treatment = per_query_scores(_qrels(), read_trec(run.ranking), METRICS)
        got = tester.compare(base, run, METRICS)
        for metric in METRICS:
            expected = stats.ttest_rel(control[metric], treatment[metric]).pvalue
            assert got[metric] == expected or math.isnan(got[metric]) and math.isnan(expected)
    assert got["ndcg@10"] == pytest.approx(2 * stats.t.sf(1, N - 1))
    assert math.isnan(got["recall@10"])
    assert not tester.notes


def test_the_report_runs_fisher_on_the_per_query_scores(sweep: Path):
    report = build_report([sweep], metrics=["ndcg@10"], test="fisher", permutations=500, seed=3)
    base = per_query_scores(_qrels(), read_trec(sweep / "0" / "run.trec"), ["ndcg@10"])
    strong = per_query_scores(_qrels(), read_trec(sweep / "1" / "run.trec"), ["ndcg@10"])
    expected = fisher_randomization(base["ndcg@10"], strong["ndcg@10"], 500, seed=3)
    assert report.cells["agc@32", "toy"].p_value["ndcg@10"] == expected


# Differences of mixed signs and sizes, for a p-value strictly between 0 and 1.
_DIFFS = np.array([0.31, -0.05, 0.12, 0.0, -0.2, 0.07, 0.15, -0.01, 0.09, 0.03, -0.11, 0.04])
_FISHER = """
import numpy as np
from colcompress.analysis.significance import fisher_randomization
d = np.array({diffs})
print(repr(fisher_randomization(np.zeros_like(d), d, 3001, seed=7)))
"""


def test_fisher_p_value_is_the_same_in_every_process_and_chunking():
    code = _FISHER.format(diffs=_DIFFS.tolist())
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    here = fisher_randomization(np.zeros_like(_DIFFS), _DIFFS, 3001, seed=7)
    assert 0 < here < 1 and runs == [repr(here)] * 2
    for chunk in (1, 7, 1000, 3001, 10_000):
        got = fisher_randomization(np.zeros_like(_DIFFS), _DIFFS, 3001, seed=7, chunk_size=chunk)
        assert got == here, chunk
    assert fisher_randomization(np.zeros_like(_DIFFS), _DIFFS, 3001, seed=8) != here


def test_fisher_p_value_estimates_the_exact_randomization_p_value():
    control = np.array([0.50, 0.20, 0.70, 0.40, 0.90, 0.30, 0.60, 0.10])
    treatment = control + np.array([0.15, 0.05, -0.02, 0.10, 0.08, -0.06, 0.12, 0.03])
    d = treatment - control
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=len(d))))  # all 2^8
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12)
    assert 0.01 < exact < 0.2  # neither trivially small nor large
    got = fisher_randomization(control, treatment, 20_000, seed=0)
    assert abs(got - exact) < 0.01
    assert fisher_randomization(treatment, control, 20_000, seed=0) == got  # two-sided
    assert fisher_randomization(control, control, 20_000, seed=0) == 1.0
    with pytest.raises(ValueError, match="permutations"):
        fisher_randomization(control, treatment[:3], 100, seed=0)


def test_mismatched_splits_are_refused(tmp_path: Path, data_dir: Path):
    write_run(tmp_path / "a", data_dir, "none", BASE_RANKS, budget=None)
    write_run(tmp_path / "b", data_dir, "agc", STRONG_RANKS, split="dev")
    with pytest.raises(AnalysisError, match="different data") as err:
        build_report([tmp_path / "a", tmp_path / "b"])
    assert str(tmp_path / "a" / "results.json") in str(err.value)
    assert str(tmp_path / "b" / "results.json") in str(err.value)
    assert "'dev'" in str(err.value) and "'test'" in str(err.value)


def test_significance_reads_the_document_split_part_a_run_was_evaluated_on(
    tmp_path: Path, data_dir: Path
):
    """A run on one part of ``dataset.document_split`` is tested on that part's queries
    (the whole source qrels would count the other part's queries as missed)."""
    toy = data_dir / "toy"
    shutil.copy(toy / "qrels" / "test.tsv", toy / "qrels" / "all.tsv")
    cut = {"source": "all", "sizes": {"train": 16, "test": N + 12 - 16}, "seed": 0}
    part = load_splits(toy, ["test"], cut)["test"]
    assert 0 < len(part.qrels) < N
    records = []
    for name, ranks in (("none", BASE_RANKS), ("agc", STRONG_RANKS)):
        run_dir = tmp_path / name
        write_run(run_dir, data_dir, name, ranks, dataset={"document_split": cut})
        ranking = {q: d for q, d in _ranking(ranks).items() if q in part.qrels}
        write_trec_run(ranking, run_dir / "run.trec")
        results = json.loads((run_dir / "results.json").read_text())
        results["metrics"] = compute_metrics(part.qrels, ranking, METRICS)
        (run_dir / "results.json").write_text(json.dumps(results))
        records.append(RunRecord.from_dir(run_dir))
    tester = Significance("t-test", 0.05, 1000, 42, None)
    assert tester.qrels(records[0]) == part.qrels
    assert tester.compare(records[0], records[1], METRICS) is not None
    assert not tester.notes
    other = dict(cut, seed=1)
    write_run(tmp_path / "other", data_dir, "hpool", BASE_RANKS, dataset={"document_split": other})
    with pytest.raises(AnalysisError, match="document_split"):
        build_report([tmp_path / "none", tmp_path / "other"])


def test_mismatched_slices_and_metric_settings_are_refused(tmp_path: Path, data_dir: Path):
    write_run(tmp_path / "a", data_dir, "none", BASE_RANKS, budget=None)
    write_run(tmp_path / "b", data_dir, "agc", STRONG_RANKS, dataset={"max_eval_queries": 8})
    with pytest.raises(AnalysisError, match="max_eval_queries=8"):
        build_report([tmp_path / "a", tmp_path / "b"])
    write_run(tmp_path / "c", data_dir, "hpool", WEAK_RANKS, evaluation={"top_k": 10})
    with pytest.raises(AnalysisError, match="metric settings"):
        build_report([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(AnalysisError, match="'map@100' is missing"):
        build_report([tmp_path / "a"], metrics=["map@100"])


def test_failed_runs_are_listed_apart(sweep: Path, data_dir: Path):
    write_run(sweep / "3", data_dir, "memtok", STRONG_RANKS, status="failed")
    (sweep / "4" / ".hydra").mkdir(parents=True)  # a job that died before writing anything
    report = build_report([sweep])
    assert not any(r.startswith("memtok") for r in report.rows)
    reasons = {f.run_dir.name: f.reason for f in report.failed}
    assert reasons["3"].startswith("RuntimeError: CUDA out of memory")
    assert reasons["4"].startswith("no results.json")
    assert "## failed runs" in render.markdown(report)


def test_rows_are_the_recorded_labels(tmp_path: Path, data_dir: Path):
    write_run(tmp_path / "0", data_dir, "none", BASE_RANKS, budget=None)
    on, off = "weighting=true", "weighting=false"
    write_run(tmp_path / "1", data_dir, "agc", STRONG_RANKS, budget=5, label=f"agc@5 {on}")
    write_run(tmp_path / "2", data_dir, "agc", WEAK_RANKS, budget=32, label=f"agc@32 {on}")
    write_run(tmp_path / "3", data_dir, "agc", WEAK_RANKS, label=f"agc@32 {off}")
    write_run(tmp_path / "4", data_dir, "none", BASE_RANKS, budget=None)  # a duplicate
    report = build_report([tmp_path])
    assert report.rows == [
        "bm25 (ref)",
        "none",
        "agc@5 weighting=true",
        "agc@32 weighting=true",  # same budget: in the order found
        "agc@32 weighting=false",
    ]
    assert any("superseded" in n for n in report.notes)
    by_budget = build_report([tmp_path], budget_columns=True)
    assert by_budget.columns == ["toy@5", "toy@32"]
    assert by_budget.rows[-2:] == ["agc weighting=true", "agc weighting=false"]
    # the uncompressed baseline fills every budget column of its dataset
    assert by_budget.cells["none", "toy@5"].run is by_budget.cells["none", "toy@32"].run
    assert by_budget.cells["agc weighting=true", "toy@5"].significant["ndcg@10"]
    assert ("agc weighting=false", "toy@5") not in by_budget.cells


def test_rows_follow_the_given_method_order(sweep: Path):
    assert build_report([sweep]).rows[-2:] == ["agc@32", "hpool@32"]  # as found
    ordered = build_report([sweep], order=["none", "hpool", "agc"])
    assert ordered.rows == ["bm25 (ref)", "none", "hpool@32", "agc@32"]


def test_budget_transfer_rows_take_the_matched_budget_run(tmp_path: Path, data_dir: Path):
    """Table 6: AGC trained at 32 and tested at 5/32/128 in one row, next to AGC trained
    at each budget; the budget-32 run sits in both rows."""
    write_run(tmp_path / "0", data_dir, "none", BASE_RANKS, budget=None)
    write_run(tmp_path / "1", data_dir, "agc", STRONG_RANKS, budget=32)
    write_run(tmp_path / "2", data_dir, "agc", WEAK_RANKS, budget=5)
    for i, test_budget in enumerate([5, 128], start=3):
        run = write_run(tmp_path / str(i), data_dir, "agc", BASE_RANKS, budget=test_budget)
        run["config"]["test_budget"] = test_budget
        run["index"]["train_budget"] = 32
        (tmp_path / str(i) / "results.json").write_text(json.dumps(run))
    report = build_report([tmp_path], budget_columns=True)
    assert report.columns == ["toy@5", "toy@32", "toy@128"]
    assert report.rows[-2:] == ["agc", "agc (train 32)"]
    transfer = {c: report.cells["agc (train 32)", c].run.run_dir.name for c in report.columns}
    assert transfer == {"toy@5": "3", "toy@32": "1", "toy@128": "4"}
    assert report.cells["agc", "toy@32"].run is report.cells["agc (train 32)", "toy@32"].run
    assert report.cells["agc", "toy@5"].run.run_dir == tmp_path / "2"
    assert ("agc", "toy@128") not in report.cells
    assert report.cells["agc (train 32)", "toy@32"].significant["ndcg@10"]
    assert not any("superseded" in n for n in report.notes)
    # without budget columns the runs keep one row each
    assert "agc@32 (train 32)" not in build_report([tmp_path]).rows
    # without AGC trained at 5, the plain row would only repeat the @32 cell: dropped
    shutil.rmtree(tmp_path / "2")
    assert build_report([tmp_path], budget_columns=True).rows[-1:] == ["agc (train 32)"]
    assert "agc" not in build_report([tmp_path], budget_columns=True).rows


def test_a_run_without_a_label_gets_the_default_one(tmp_path: Path, data_dir: Path):
    """results.json from before the label field: ``method@budget`` as a job writes it."""
    write_run(tmp_path / "0", data_dir, "none", BASE_RANKS, budget=None)
    write_run(tmp_path / "1", data_dir, "agc", STRONG_RANKS, label="agc@32 ablation=no_weight")
    run = write_run(tmp_path / "2", data_dir, "agc", WEAK_RANKS, budget=5)
    run["config"]["test_budget"], run["index"]["train_budget"] = 5, 32
    (tmp_path / "2" / "results.json").write_text(json.dumps(run))
    labels = [RunRecord.from_dir(tmp_path / d).label for d in "012"]
    assert labels == ["none", "agc@32 ablation=no_weight", "agc@5 (train 32)"]
    with pytest.raises(AnalysisError, match=r"missing/results.json: unreadable"):
        RunRecord.from_dir(tmp_path / "missing")


def test_cli_writes_markdown_csv_latex(sweep: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep), "--metric", "ndcg@10,recall@10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## ndcg@10" in printed and "## recall@10" in printed
    assert (out / "report.md").read_text() in printed
    tex = (out / "report.tex").read_text()
    assert r"\toprule" in tex and r"$^\dagger$" in tex and r"ndcg@10" in tex
    assert len((out / "report.csv").read_text().splitlines()) == 1 + 4 * 2
    (sweep / "9").mkdir()
    write_run(sweep / "9" / "x", sweep.parent / "beir", "seqresize", BASE_RANKS, split="dev")
    assert main([str(sweep), "--out", str(out)]) == 2
    assert "different data" in capsys.readouterr().err


def test_archived_runs_with_gzipped_rankings_give_the_same_report(sweep: Path, tmp_path: Path):
    """experiments/archive_runs.sh keeps results.json + run.trec.gz; the tests still run."""
    archive = tmp_path / "archive"
    script = Path(__file__).parents[2] / "experiments" / "archive_runs.sh"
    subprocess.run(["bash", str(script), str(sweep.parent), str(archive), sweep.name], check=True)
    kept = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert kept == [
        f"sweep/{job}/{name}" for job in "012" for name in ("results.json", "run.trec.gz")
    ]
    plain = _csv_rows(build_report([sweep], metrics=METRICS))
    gzipped = _csv_rows(build_report([archive / "sweep"], metrics=METRICS))
    assert gzipped.keys() == plain.keys()
    for key, row in plain.items():
        assert gzipped[key]["p_value"] == row["p_value"], key
    assert float(gzipped["agc@32", "ndcg@10"]["p_value"]) < 0.05  # the test did run


def test_archiving_a_missing_stage_fails_naming_it(tmp_path: Path):
    script = Path(__file__).parents[2] / "experiments" / "archive_runs.sh"
    out = subprocess.run(
        ["bash", str(script), str(tmp_path), str(tmp_path / "dest"), "nope"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and f"{tmp_path}/nope: no such stage directory" in out.stderr
    assert not (tmp_path / "dest").exists()


def test_published_percentages_sit_beside_the_runs(sweep: Path, tmp_path: Path):
    paper = tmp_path / "paper.csv"
    paper.write_text(
        "method,dataset,budget,metric,pct\n"
        "agc,toy,32,ndcg@10,97.0\n"
        "agc,toy,5,ndcg@10,80.0\n"  # another budget: not this run's
        "hpool,toy,,ndcg@10,90.8\n"  # any budget
    )
    report = build_report([sweep], metrics=METRICS, published=paper)
    assert report.cells["agc@32", "toy"].published == {"ndcg@10": 97.0}
    assert report.cells["hpool@32", "toy"].published == {"ndcg@10": 90.8}
    assert report.cells["none", "toy"].published == {}
    agc = report.cells["agc@32", "toy"]
    md = render.markdown(report)
    assert f"({agc.pct['ndcg@10']:.1f}%, paper 97.0%)†" in md
    ndcg, recall = md.split("## recall@10")
    assert "(paper.csv)" in ndcg and "paper" not in recall  # no published recall@10
    assert r"paper 97.0\%)$^\dagger$" in render.latex(report)
    rows = _csv_rows(report)
    assert rows["agc@32", "ndcg@10"]["published_pct"] == "97.0"
    assert rows["agc@32", "recall@10"]["published_pct"] == ""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "method,dataset,metric,pct\nagc,toy,ndcg@10,97\n",
            r"paper.csv: missing column\(s\) budget",
        ),
        ("method,dataset,budget,metric,pct\nagc,toy,32,ndcg@10,high\n", r"paper.csv:2: budget and"),
        (
            "method,dataset,budget,metric,pct\nagc,toy,,ndcg@10,1\nagc,toy,,ndcg@10,2\n",
            r"paper.csv:3: .* given twice",
        ),
    ],
)
def test_bad_published_files_are_refused_naming_the_line(
    sweep: Path, tmp_path: Path, text: str, error: str
):
    paper = tmp_path / "paper.csv"
    paper.write_text(text)
    with pytest.raises(AnalysisError, match=error):
        build_report([sweep], published=paper)
    with pytest.raises(AnalysisError, match="nowhere.csv: unreadable"):
        build_report([sweep], published=tmp_path / "nowhere.csv")
