"""Every compressor through the real entry point: train (debug size) -> index -> metrics.

One multirun per group keeps it to one Python process per group (jobs run in turn).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.integration.helpers import colcompress, results_files

TRAINED = ["seqresize", "memtok", "hpool", "agc", "crisp"]
POSTHOC = ["kmeans_posthoc", "first_k", "tail", "k_spacing", "idf", "attention_prune"]

pytestmark = pytest.mark.data  # every test runs colcompress.run on NFCorpus


def _sweep(tmp_path: Path, *overrides: str) -> dict[str, dict]:
    colcompress(
        tmp_path,
        "-m",
        "debug=default",
        "evaluation.baselines=[]",
        "logger=none",
        f"hydra.sweep.dir={tmp_path / 'logs' / 'sweep'}",
        *overrides,
        timeout=900,
    )
    runs = [json.loads(p.read_text()) for p in results_files(tmp_path)]
    failed = [(r["method"], r.get("error")) for r in runs if r.get("status") == "failed"]
    assert not failed, failed
    return {r["method"]: r for r in runs}


def _finite_unit(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.slow
def test_every_budgeted_compressor_runs_with_fastplaid(tmp_path: Path):
    runs = _sweep(tmp_path, f"compressor={','.join(TRAINED + POSTHOC)}", "budget=6")
    assert sorted(runs) == sorted(TRAINED + POSTHOC)
    for name, r in runs.items():
        assert r["config"]["index"]["_target_"].endswith("FastPlaidIndex"), name
        assert all(_finite_unit(v) for v in r["metrics"].values()), name
        index = r["index"]
        assert index["budget"] == 6 and 0 < index["vectors_per_doc"] <= 6, name
        assert index["compression_ratio"] == pytest.approx(1 - 6 / index["avg_tokens_per_doc"])
        assert len(r["utilization"]["strength"]) == 6, name  # one position per slot
        assert r["label"] == f"{name}@6"  # the default label
    # seqresize and memtok fill every slot; the others keep short documents short
    assert runs["memtok"]["index"]["vectors_per_doc"] == 6
    assert runs["seqresize"]["index"]["vectors_per_doc"] == 6


@pytest.mark.slow
def test_relative_crisp_keeps_a_quarter_of_the_tokens(tmp_path: Path):
    runs = _sweep(
        tmp_path,
        "experiment=crisp",
        "compressor=crisp,kmeans_posthoc",
        "budget=null",
        "compressor.mode=relative",
        "compressor.ratio=4",
    )
    for name, r in runs.items():
        index = r["index"]
        assert index["compression_ratio"] is None, name  # no fixed budget
        assert index["vectors_per_doc"] <= index["avg_tokens_per_doc"] / 4 + 1, name
        assert all(_finite_unit(v) for v in r["metrics"].values()), name


@pytest.mark.slow
def test_lossless_pruning_on_colbert_p_records_its_prune_ratio(tmp_path: Path):
    runs = _sweep(tmp_path, "experiment=lossless")  # ColBERT_P on the flat index
    assert set(runs) == {"lossless_lp", "lossless_norm"}
    for name, r in runs.items():
        index = r["index"]
        assert 0.0 <= index["prune_ratio"] < 1.0, name
        assert index["vector_reduction"] == pytest.approx(index["prune_ratio"], abs=1e-6)
        assert all(_finite_unit(v) for v in r["metrics"].values()), name


@pytest.mark.slow
def test_a_trained_budget_cannot_change_at_index_time(tmp_path: Path):
    with pytest.raises(AssertionError, match="trained with budget=4 and cannot index with"):
        colcompress(tmp_path, "debug=default", "compressor=memtok", "budget=4", "test_budget=8")
    assert not list((tmp_path / "logs").rglob("*.ckpt"))  # refused before any training
