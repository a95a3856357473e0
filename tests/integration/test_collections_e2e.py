"""Any collection end to end: a test-only local folder evaluated without training, and
one model trained on one collection, evaluated on two, laid out as the paper's Table 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colcompress.analysis.tables import build_report
from colcompress.data.beir import load_beir
from tests.integration.helpers import colcompress, load_results

pytestmark = pytest.mark.data

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def write_test_only(source: Path, folder: Path, queries: int = 6) -> Path:
    """A local collection cut from NFCorpus's test split: qrels/test.tsv only, and one
    query that is also a corpus document (same id, same text)."""
    data = load_beir(source, "test")
    qids = list(data.queries)[:queries]
    docs = {d for q in qids for d in data.qrels[q]}
    docs |= set(list(data.corpus)[:40])
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for d in sorted(docs):
            doc = data.corpus[d]
            f.write(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n")
        f.write(json.dumps({"_id": qids[0], "title": "", "text": data.queries[qids[0]]}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for q in qids:
            f.write(json.dumps({"_id": q, "text": data.queries[q]}) + "\n")
    rows = [f"{q}\t{d}\t{s}" for q in qids for d, s in data.qrels[q].items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows))
    return folder


def test_a_test_only_local_collection_evaluates_without_training(
    beir_dir: Path, tmp_path: Path
) -> None:
    folder = write_test_only(beir_dir / "nfcorpus", tmp_path / "mine")
    colcompress(
        tmp_path,
        "debug=default",
        "dataset=local",
        f"dataset.path={folder}",
        "train=false",
        "dataset.query_length=auto",
        "dataset.ignore_identical_ids=true",
        "evaluation.baselines=[bm25]",
    )
    results = load_results(tmp_path)
    assert results["dataset"] == "mine" and results["split"] == "test"
    assert results["dataset_dir"] == str(folder)
    assert all(0.0 <= results["metrics"][m] <= 1.0 for m in METRICS)
    assert 2 <= results["query_length"] <= 512 and results["ignore_identical_ids"] is True
    assert results["num_queries"] == 6 and results["skipped_queries"] == 0
    ranking = (Path(results["output_dir"]) / "run.trec").read_text().splitlines()
    assert ranking and not [r for r in ranking if r.split()[0] == r.split()[2]]


def test_trained_on_one_collection_evaluated_on_two(tmp_path: Path) -> None:
    colcompress(
        tmp_path, "debug=default", "eval_datasets=[nfcorpus,scifact]", "evaluation.baselines=[bm25]"
    )
    results = load_results(tmp_path)
    run_dir = Path(results["output_dir"])
    assert results["dataset"] == "nfcorpus+scifact"
    assert list(results["collections"]) == ["nfcorpus", "scifact"]
    for name, out in results["collections"].items():
        assert out["dataset"] == name and out["split"] == "test"
        assert all(0.0 <= out["metrics"][m] <= 1.0 for m in METRICS)
        assert out["baselines"]["bm25"]["metrics"]["ndcg@10"] > 0
        assert out["index"]["num_docs"] > 0 and out["query_length"] == 32
        assert (run_dir / name / "run.trec").is_file() and (run_dir / name / "index").is_dir()
    average = results["average"]["metrics"]
    for m in METRICS:
        values = [out["metrics"][m] for out in results["collections"].values()]
        assert average[m] == pytest.approx(sum(values) / 2)

    report = build_report([run_dir], metrics=["ndcg@10"])
    assert report.columns == ["nfcorpus", "scifact", "average"]
    assert report.rows == ["bm25 (ref)", "none"]
    for column in ("nfcorpus", "scifact"):
        cell = report.cells["none", column]
        assert cell.metrics["ndcg@10"] == results["collections"][column]["metrics"]["ndcg@10"]
        assert cell.run.ranking == run_dir / column / "run.trec"
    assert report.cells["none", "average"].metrics["ndcg@10"] == pytest.approx(average["ndcg@10"])
