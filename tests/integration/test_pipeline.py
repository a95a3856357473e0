"""Tiny end-to-end runs through Hydra: train -> FastPlaid index -> ranx metrics."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colcompress.index.store import VectorStore
from tests.conftest import ROOT
from tests.integration.helpers import colcompress, load_results, run_env

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

pytestmark = pytest.mark.data  # every test runs colcompress.run on NFCorpus


def _finite_unit(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def test_debug_run_trains_indexes_and_evaluates(tmp_path: Path):
    proc = colcompress(tmp_path, "debug=default", "evaluation.baselines=[bm25]")
    results = load_results(tmp_path)
    run_dir = Path(results["output_dir"])
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
    assert _finite_unit(results["baselines"]["bm25"]["metrics"]["ndcg@10"])
    index = results["index"]
    # the utilization pass saw exactly the vectors that were indexed
    assert index["num_docs"] > 0
    assert index["num_vectors"] == results["utilization"]["total_indexed_vectors"]
    assert index["index_bytes"] > 0 and index["vectors_per_doc"] > 1
    assert (run_dir / "index").is_dir() and (run_dir / "run.trec").is_file()
    assert results["config"]["index"]["_target_"].endswith("FastPlaidIndex")
    assert results["method"] == "none" and results["dataset"] == "nfcorpus"
    assert results["label"] == "none"  # the default label: no budget without compression
    assert results["versions"]["torch"].startswith("2.11.0")
    # utilization analytics are recorded for every run
    util = results["utilization"]
    assert 0 < util["index_usage"] <= 1 and util["cv"] is not None
    assert (run_dir / "utilization_strength.png").is_file()
    # wandb wrote its offline files inside the run directory, nowhere else
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    media = offline / "files" / "media"
    # utilization went to wandb: the per-position table and both figures
    (table,) = (media / "table" / "utilization").glob("per_position_*.table.json")
    rows = json.loads(table.read_text())["data"]
    assert [r[2] for r in rows] == util["wins"]
    images = sorted(p.name.split("_")[0] for p in (media / "images" / "utilization").glob("*.png"))
    assert images == ["similarity", "strength"]
    assert not (tmp_path / "wandb").exists() or not any((tmp_path / "wandb").iterdir())
    assert "| colcompress (none) |" in proc.stdout
    # checkpoints are there and rebuild the model for post-hoc evaluation
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_chunked_evaluation_builds_fastplaid_from_the_vector_store(tmp_path: Path):
    """evaluation.chunk_docs=64: the debug documents go to disk 64 at a time, the
    FastPlaid index is built from them, and the run scores as usual."""
    colcompress(
        tmp_path,
        "debug=default",
        "train=false",
        "evaluation.chunk_docs=64",
        "evaluation.keep_vectors=true",
        "evaluation.baselines=[]",
        "logger=none",
    )
    results = load_results(tmp_path)
    run_dir = Path(results["output_dir"])
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
    assert results["config"]["evaluation"]["chunk_docs"] == 64
    assert results["config"]["index"]["_target_"].endswith("FastPlaidIndex")
    store = VectorStore.open(run_dir / "vectors")
    assert len(store) == results["index"]["num_docs"] > 200
    assert store.num_chunks == -(-len(store) // 64)
    index = results["index"]
    assert index["num_vectors"] == store.num_vectors
    assert results["utilization"]["total_indexed_vectors"] == store.num_vectors
    assert index["index_bytes"] > 0 and (run_dir / "index" / "ids.json").is_file()
    assert sorted(json.loads((run_dir / "index" / "ids.json").read_text())) == sorted(store.ids)


@pytest.mark.slow
def test_evaluate_checkpoint_without_training_with_flat_index(tmp_path: Path):
    colcompress(tmp_path / "a", "debug=default", "evaluate=false")
    (ckpt,) = (tmp_path / "a" / "logs").rglob("last.ckpt")
    colcompress(
        tmp_path / "b",
        "debug=default",
        "train=false",
        f"init_from={ckpt}",
        "index=flat",
        "evaluation.baselines=[]",
    )
    results = load_results(tmp_path / "b")
    assert results["config"]["index"]["_target_"].endswith("FlatIndex")
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint(tmp_path: Path):
    """Kill a long run right after its first checkpoint, then resume to the end."""
    first = tmp_path / "first"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "colcompress.run",
            "debug=default",
            "trainer.max_steps=200",
            "evaluate=false",
            "logger=csv",
        ],
        cwd=ROOT,
        env=run_env(first),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    ckpt = None
    while time.time() < deadline and ckpt is None:
        found = sorted((first / "logs").rglob("step2.ckpt")) if (first / "logs").exists() else []
        ckpt = found[0] if found else None
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt is not None, "no checkpoint appeared before the deadline"
    time.sleep(1)  # let a partially written later checkpoint settle; step2 is complete
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 2
    second = tmp_path / "second"
    colcompress(
        second,
        "debug=default",
        f"ckpt_path={ckpt}",
        "trainer.max_steps=4",
        "evaluate=false",
        "logger=csv",
    )
    (last,) = (second / "logs").rglob("last.ckpt")
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4
    resumed = sorted(p.name for p in (second / "logs").rglob("step*.ckpt"))
    assert resumed == ["step3.ckpt", "step4.ckpt"]


@pytest.mark.slow
def test_progress_true_draws_a_bar_for_every_step(tmp_path: Path):
    proc = colcompress(
        tmp_path,
        "debug=default",
        "train=false",
        "index=flat",
        "evaluation.baselines=[bm25]",
        "logger=none",
        "progress=true",
    )
    finished = [line for line in re.split(r"[\r\n]", proc.stderr) if "100%|" in line]
    for label in ("corpus", "queries", "search", "bm25 search"):
        assert any(line.lstrip().startswith(f"{label}:") for line in finished), label
