"""Metrics through ranx: exact values, the machine-wide lock, and the corrupted-cache guard."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from colcompress.evaluation.metrics import compute_metrics, ranx_lock_path

# Doc ids of one width per script run, so each width is its own numba signature
# (ranx stores the ids in fixed-width numpy unicode arrays).
_SCRIPT = """
import sys
from colcompress.evaluation.metrics import compute_metrics
for w in map(int, sys.argv[1:]):
    ids = [str(10 ** (w - 1) + i) for i in range(40)]
    qrels = {f"q{i}": {ids[i]: 1} for i in range(30)}
    run = {f"q{i}": {ids[i]: 2.0, ids[i + 1]: 1.0} for i in range(30)}
    print(w, compute_metrics(qrels, run, ["recall@1"])["recall@1"])
"""


QRELS = {"a": {"d1": 1, "d2": 1}, "b": {"d3": 2}, "c": {"d4": 1}, "unjudged": {"d1": 0}}
RUN = {"a": {"d9": 3.0, "d1": 2.0}, "b": {"d3": 1.0}, "x": {"d1": 1.0}}


def test_metrics_match_hand_computed_values():
    got = compute_metrics(QRELS, RUN, ["ndcg@10", "recall@10", "mrr@10"])
    # a: d1 at rank 2 of 2 relevant; b: perfect; c: not retrieved (counts as 0)
    dcg_a = 1 / math.log2(3)
    idcg_a = 1 + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((dcg_a / idcg_a + 1 + 0) / 3)
    assert got["recall@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert got["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_compute_metrics_waits_for_the_ranx_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("COLCOMPRESS_RANX_LOCK", str(tmp_path))
    compute_metrics(QRELS, RUN)  # compiled before timing anything
    done = threading.Event()
    worker = threading.Thread(target=lambda: (compute_metrics(QRELS, RUN), done.set()))
    with FileLock(str(ranx_lock_path())):  # another process's hold, as flock sees it
        worker.start()
        time.sleep(0.5)
        assert not done.is_set()
    worker.join(timeout=60)
    assert done.is_set()


def _swap_cache_entries(cache_dir: Path, function: str) -> None:
    """Give the qrels and the run signature of ``function`` each other's compiled code.

    The index of a race between two compiling processes (numba#4807) maps one
    signature to the data file another process wrote for a different signature.
    """
    import pickle

    (index,) = cache_dir.rglob(f"*.{function}-*.nbi")
    with index.open("rb") as f:
        pickle.load(f)  # numba version
        _, overloads = pickle.loads(f.read())
    names = [
        name
        for key, name in overloads.items()
        if "UnicodeCharSeq" in str(key[0])  # the (ids, relevance) and (ids, scores) ones
    ]
    assert len(names) == 2, overloads
    a, b = (index.parent / n for n in names)
    swap = a.with_suffix(".swap")
    shutil.move(a, swap)
    shutil.move(b, a)
    shutil.move(swap, b)


def test_a_corrupted_numba_cache_raises_instead_of_returning_wrong_metrics(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONWARNINGS": "ignore"}
    env["COLCOMPRESS_RANX_LOCK"] = str(tmp_path)
    cmd = [sys.executable, "-c", _SCRIPT]
    fresh = subprocess.run(cmd + ["5"], env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["5", "1.0"]
    _swap_cache_entries(tmp_path / "numba", "create_and_sort")
    broken = subprocess.run(cmd + ["5"], env=env, capture_output=True, text=True, timeout=600)
    assert broken.returncode != 0
    assert "MetricsIntegrityError" in broken.stderr
    assert "numba cache is corrupted" in broken.stderr
    assert "1.0" not in broken.stdout
