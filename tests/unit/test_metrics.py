"""Metrics through ranx: exact values, the machine-wide lock, and the corrupted-cache guard."""

from __future__ import annotations

import json
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

from colcompress.evaluation.metrics import ID_WIDTH, compute_metrics, id_width, ranx_lock_path

# Doc ids of the given widths: each width was once its own numba signature.
_SCRIPT = """
import sys
from colcompress.evaluation.metrics import compute_metrics
for w in map(int, sys.argv[1:]):
    ids = [str(10 ** (w - 1) + i) for i in range(40)]
    qrels = {f"q{i}": {ids[i]: 1} for i in range(30)}
    run = {f"q{i}": {ids[i]: 2.0, ids[i + 1]: 1.0} for i in range(30)}
    print(w, compute_metrics(qrels, run, ["recall@1"])["recall@1"])
"""

# What runs and the report call, at real id widths (NFCorpus's, SciFact's, Flickr's),
# then the ranx dispatchers that had to compile (numba's cache misses) as JSON. The
# report's run misses judged queries and holds unjudged ones.
_CALLS = """
import json, sys
from numba.core.dispatcher import Dispatcher
from colcompress.evaluation.metrics import compute_metrics, per_query_scores
for prefix in ("MED-", "", "1000268201_693b08cb0e.jpg#"):
    ids = [f"{prefix}{i}" for i in range(1, 500)]
    qrels = {f"PLAIN-{i}": {ids[i]: 2, ids[i + 7]: 1} for i in range(300)}
    run = {q: {ids[i + j]: 10.0 - j for j in range(100)} for i, q in enumerate(qrels)}
    other = {q: {ids[i + j]: 10.0 - j for j in range(3, 103)} for i, q in enumerate(qrels)}
    other = {**dict(list(other.items())[:250]), "UNJUDGED": {ids[0]: 1.0}}
    compute_metrics(qrels, run, ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
    for ranking in (run, other):
        per_query_scores(qrels, ranking, ["ndcg@10", "recall@100"])
    per_query_scores(qrels, other, ["ndcg@10"])
print(json.dumps({f"{m}.{n}": list(map(str, f.stats.cache_misses))
                  for m, mod in list(sys.modules.items()) if m.startswith("ranx")
                  for n, f in vars(mod).items()
                  if isinstance(f, Dispatcher) and f.stats.cache_misses}))
"""


def _env(tmp_path: Path, cache: Path) -> dict[str, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONWARNINGS": "ignore"}
    env["COLCOMPRESS_RANX_LOCK"] = str(tmp_path)
    return env


@pytest.fixture(scope="module")
def compiled_cache(tmp_path_factory) -> Path:
    """A numba cache filled by ``compile_kernels`` alone, in a fresh process."""
    root = tmp_path_factory.mktemp("ranx")
    code = "from colcompress.evaluation.metrics import compile_kernels; compile_kernels()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(root, root / "numba"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return root / "numba"


@pytest.mark.slow  # compiles every ranx kernel into a fresh numba cache (~2 min on 2 cores)
def test_compile_kernels_compiles_everything_runs_and_reports_use(tmp_path, compiled_cache):
    cache = tmp_path / "numba"
    shutil.copytree(compiled_cache, cache)
    cmd = [sys.executable, "-c", _CALLS]
    done = subprocess.run(cmd, env=_env(tmp_path, cache), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {}


def test_fixed_width_ids_keep_prefixes_apart():
    qrels = {"a": {"d1": 1}, "b": {"MED-10": 1}}
    run = {"a": {"d10": 2.0, "d1": 1.0}, "b": {"MED-10": 1.0}}  # a prefix ranks first
    got = compute_metrics(qrels, run, ["mrr@10", "recall@1"])
    assert got == pytest.approx({"mrr@10": (0.5 + 1) / 2, "recall@1": 1 / 2})


def test_ids_longer_than_the_fixed_width_widen_it():
    assert id_width({"q": {"d1": 1.0, "MED-10": 2.0}}) == ID_WIDTH
    assert id_width({"q": {"d" * (ID_WIDTH + 5): 1.0}, "r": {}}) == ID_WIDTH + 5


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


@pytest.mark.slow  # needs the freshly compiled cache above
def test_a_corrupted_numba_cache_raises_instead_of_returning_wrong_metrics(
    tmp_path, compiled_cache
):
    shutil.copytree(compiled_cache, tmp_path / "numba")
    env = _env(tmp_path, tmp_path / "numba")
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
