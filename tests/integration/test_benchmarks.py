"""Every ``make bench`` script at its ``--tiny`` size (tiny random model, a few documents)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import run_env


def bench(tmp_path: Path, script: str, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/<script>.py --tiny`` and return the JSON it wrote."""
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--tiny", "--out", str(out), *args],
        cwd=ROOT,
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "load average" in proc.stdout and "|---|" in proc.stdout  # header and table
    result = json.loads(out.read_text())
    assert result["environment"]["cpus"] >= 1
    return result


@pytest.mark.data
def test_compress_cost(tmp_path: Path):
    rows = bench(tmp_path, "bench_compress_cost", "--rounds", "1", "--only", "hpool (scipy)")[
        "rows"
    ]
    assert [r["compressor"] for r in rows] == ["none", "hpool (scipy)"]
    none, hpool = rows
    assert none["added"] == 0.0 and none["compressor_s"] == 0.0
    assert hpool["vectors_per_doc"] <= 32 < none["vectors_per_doc"]
    assert 0.0 < hpool["compressor_s"] < hpool["encode_s"]


@pytest.mark.data
def test_hpool_backends_agree(tmp_path: Path):
    rows = bench(tmp_path, "bench_hpool", "--budgets", "5", "32")["rows"]
    assert len(rows) == 6
    assert all(r["same_partition_scipy_torch"] == 1.0 for r in rows)
    assert all(r["docs_per_s"] > 0 for r in rows)


@pytest.mark.data
def test_roofline(tmp_path: Path):
    rows = bench(tmp_path, "bench_roofline", "--repeats", "1", "--matmul-size", "256")["rows"]
    encoding, executed, useful = rows
    assert all(r["gflops"] > 0 and r["matmul_gflops"] > 0 for r in rows)
    assert encoding["gflop"] > 0 and executed["gflop"] >= useful["gflop"] > 0


@pytest.mark.data
def test_peers(tmp_path: Path):
    rows = bench(tmp_path, "bench_peers", "--repeats", "1")["rows"]
    assert [r["index"].split()[0] for r in rows] == ["flat", "colcompress", "colcompress", "PyLate"]
    assert rows[0]["recall_at_k_vs_exact"] == 1.0
    assert all(0.0 <= r["recall_at_k_vs_exact"] <= 1.0 and r["index_bytes"] > 0 for r in rows)


@pytest.mark.data
def test_train_step(tmp_path: Path):
    rows = bench(tmp_path, "bench_train_step", "--rounds", "1")["rows"]
    assert [r["loop"] for r in rows] == ["bare PyTorch loop", "lightning.Trainer"]
    assert all(r["step_s"] > 0 for r in rows)


@pytest.mark.data
def test_lossless(tmp_path: Path):
    rows = bench(tmp_path, "bench_lossless", "--workers", "1")["rows"]
    assert [r["strategy"] for r in rows] == ["lp", "lp_svd"]
    assert all(0.0 <= r["pruned"] < 1.0 and r["docs_per_s"] > 0 for r in rows)


@pytest.mark.data
def test_memory(tmp_path: Path):
    rows = bench(tmp_path, "bench_memory", "--only", "none", "hpool (scipy)")["rows"]
    none, hpool = rows
    assert none["peak_rss_mb"] >= none["model_rss_mb"] > 0
    assert hpool["index_bytes_per_doc"] < none["index_bytes_per_doc"]


@pytest.mark.slow
def test_scale(tmp_path: Path):
    rows = bench(tmp_path, "bench_scale", "--workdir", str(tmp_path))["rows"]
    assert [(r["corpus"], r["mode"]) for r in rows] == [
        ("nfcorpus", "in memory"),
        ("nfcorpus", "chunked"),
        ("nfcorpus x3", "in memory"),
        ("nfcorpus x3", "chunked"),
    ]
    small, _, large, large_chunked = rows
    assert large["docs"] == large_chunked["docs"] == 3 * small["docs"]
    assert all(r["peak_rss_mb"] >= r["loaded_rss_mb"] > 0 and r["total_s"] > 0 for r in rows)
    assert all(0 <= r["encode_mb"] <= r["index_mb"] <= r["evaluation_mb"] for r in rows)
    assert large["vectors"] == large_chunked["vectors"] > small["vectors"]
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in rows)
    assert list(tmp_path.glob("tmp*")) == []  # every store and index deleted
