"""Retrieval metrics through ranx.

ranx compiles its kernels with numba and caches them on disk (``cache=True``), one
index file per function mapping each type signature to a numbered data file. Numba
updates that index with an unlocked read-modify-write (numba/numba#4807), so two
processes compiling new signatures at once (sweep jobs, a test run beside an
experiment) can leave an entry pointing at code compiled for another signature.
ranx then runs that code on its document-id arrays and returns wrong metrics
without any error; a SciFact run reported nDCG@10 0.161 for a run whose ranking
scores 0.726. Hence two guards here: every ranx call holds one machine-wide file
lock (:func:`ranx_lock`), and :func:`compute_metrics` checks ranx's recall over the
whole ranking against a plain count, raising :class:`MetricsIntegrityError` when
they disagree.

Compilation itself costs about a minute on 2 CPU cores. Qrels and runs enter ranx
with their document ids at one fixed width (ranx would use the longest id's, one
compiled signature per dataset), so :func:`compile_kernels`, which ``make install``
runs, compiles everything later runs load.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba
import numpy as np
import ranx
from filelock import FileLock
from numba.typed import List as TypedList
from ranx import Qrels, Run, evaluate
from ranx.data_structures.common import create_and_sort
from ranx.meta.evaluate import extract_metric_and_params
from ranx.metrics import metric_switch

from colcompress.atomic import atomic_path

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_CHECK_METRIC = "recall"  # ranx: recall over everything retrieved (no cutoff)
_TOLERANCE = 1e-9
ID_WIDTH = 64  # characters: ids up to this long share one compiled ranx signature


def invalid_metrics(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names ranx cannot evaluate, each with ranx's reason (empty when all are fine).

    A name is a ranx metric with an optional cutoff and relevance level:
    ``ndcg@10``, ``recall@100``, ``mrr``, ``map@5``, ``hits@10-l2``, ``rbp.95``.
    """
    bad = []
    for name in names:
        try:
            metric, cutoff, _ = extract_metric_and_params(str(name))
            metric_switch(metric)
            if cutoff < 0:
                raise ValueError(f"negative cutoff {cutoff}")
        except (ValueError, IndexError) as exc:
            bad.append(f"{name!r} ({str(exc).split('. ')[0]})")
    return bad


class MetricsIntegrityError(RuntimeError):
    """ranx's numbers contradict a direct count (a corrupted numba cache)."""


def ranx_lock_path() -> Path:
    """The lock file shared by every process of this machine that calls ranx."""
    return Path(os.environ.get("COLCOMPRESS_RANX_LOCK") or tempfile.gettempdir()) / (
        "colcompress-ranx.lock"
    )


@contextmanager
def ranx_lock() -> Iterator[None]:
    """Hold the machine-wide ranx lock (numba compiles and caches under it)."""
    with FileLock(str(ranx_lock_path())):
        yield


def id_width(data: dict[str, dict[str, float]]) -> int:
    """Width of the document-id arrays handed to ranx: ``ID_WIDTH``, or the longest id."""
    return max([ID_WIDTH, *(len(d) for docs in data.values() for d in docs)])


def _sorted_typed(data: dict[str, dict[str, float]], dtype: type) -> Any:
    """ranx's numba dict of dicts, built as ``Qrels(dict)`` / ``Run(dict)`` build it,
    except that the document ids go in at a fixed width of at least ``ID_WIDTH``.

    ranx passes them as numpy ``<U{longest id}`` arrays, and numba compiles one
    ``create_and_sort`` per width: every dataset (and every test) paid its own
    compilation. With one width, :func:`compile_kernels` compiles what every
    dataset whose ids fit in ``ID_WIDTH`` characters uses.
    """
    width = id_width(data)
    return create_and_sort(
        TypedList(list(data)),
        TypedList([np.array(list(docs), dtype=f"<U{width}") for docs in data.values()]),
        TypedList([np.array(list(docs.values()), dtype=dtype) for docs in data.values()]),
    )


def ranx_qrels(qrels: dict[str, dict[str, int]]) -> Qrels:
    """Build ranx Qrels from ``{qid: {docid: relevance}}`` (call under :func:`ranx_lock`)."""
    out = Qrels()
    out.qrels, out.sorted = _sorted_typed(qrels, np.int64), True
    return out


def ranx_run(run: dict[str, dict[str, float]], name: str = "run") -> Run:
    """Build a ranx Run from ``{qid: {docid: score}}`` (call under :func:`ranx_lock`)."""
    out = Run(name=name)
    out.run, out.sorted = _sorted_typed(run, np.float64), True
    return out


def _full_recall(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    """Mean over ``qrels``' queries of the fraction of relevant documents in ``run``."""
    total = 0.0
    for q, docs in qrels.items():
        relevant = [d for d, r in docs.items() if r > 0]
        total += sum(d in run[q] for d in relevant) / len(relevant)
    return total / len(qrels)


def drop_identical_ids(
    run: dict[str, dict[str, float]], top_k: int | None = None
) -> dict[str, dict[str, float]]:
    """``run`` without any document whose id is its query's, cut to ``top_k`` per query.

    BEIR's ``ignore_identical_ids``: on ArguAna and Quora the queries are corpus
    documents, and retrieving a query itself is not an answer.
    """
    out = {}
    for qid, docs in run.items():
        kept = sorted(((d, s) for d, s in docs.items() if d != qid), key=lambda x: -x[1])
        out[qid] = dict(kept[:top_k] if top_k is not None else kept)
    return out


def unjudged_queries(qrels: dict[str, dict[str, int]]) -> list[str]:
    """Queries of ``qrels`` without a relevant (score > 0) document: BEIR does not
    score them, and neither does :func:`compute_metrics`."""
    return [q for q, judged in qrels.items() if not any(r > 0 for r in judged.values())]


def compute_metrics(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Evaluate a run against qrels.

    Queries of ``qrels`` missing from ``run`` count as retrieving nothing (score 0),
    as trec_eval does with ``-c``; run queries without judgements, and queries
    without a relevant document (:func:`unjudged_queries`, logged), are not scored.

    Parameters
    ----------
    qrels : dict[qid, dict[docid, int]]
    run : dict[qid, dict[docid, float]]
    metrics : sequence of ranx metric names

    Returns
    -------
    dict of metric name -> mean value over the judged queries

    Raises
    ------
    MetricsIntegrityError
        ranx's recall over the whole ranking differs from a direct count: its numba
        cache holds code for the wrong types (see the module docstring).
    """
    skipped = set(unjudged_queries(qrels))
    if skipped:
        log.info("%d queries without a relevant document are not scored", len(skipped))
    judged = {q: d for q, d in qrels.items() if q not in skipped}
    full = {q: run.get(q, {}) for q in judged}
    missing = {q for q, d in full.items() if not d}
    scored = {q: d for q, d in full.items() if d}
    if not scored:
        return {m: 0.0 for m in metrics}
    requested = list(dict.fromkeys(metrics))
    scored_qrels = {q: judged[q] for q in scored}
    with ranx_lock():
        values = evaluate(
            ranx_qrels(scored_qrels),
            ranx_run(scored),
            requested + ([_CHECK_METRIC] if _CHECK_METRIC not in requested else []),
        )
    if isinstance(values, float):  # ranx returns a bare float for a single metric
        values = {_CHECK_METRIC: values}
    expected = _full_recall(scored_qrels, scored)
    if abs(values[_CHECK_METRIC] - expected) > _TOLERANCE:
        raise MetricsIntegrityError(
            f"ranx gives recall {values[_CHECK_METRIC]:.6f} over the retrieved documents, "
            f"a direct count gives {expected:.6f}: ranx's numba cache is corrupted "
            f"(numba/numba#4807). Delete the *.nbi and *.nbc files under "
            f"{numba.config.CACHE_DIR or Path(ranx.__file__).parent} "
            "and rerun; the metrics were not written"
        )
    scale = len(scored) / (len(scored) + len(missing))
    return {m: float(values[m]) * scale for m in metrics}


def per_query_scores(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: tuple[str, ...] | list[str],
) -> dict[str, np.ndarray]:
    """Each metric's score on every query of ``qrels``, in query-id order.

    Queries of ``qrels`` missing from ``run`` score 0 and run queries without
    judgements are left out (ranx's ``make_comparable``), so two runs scored against
    the same qrels give paired arrays. Holds :func:`ranx_lock`.

    Returns
    -------
    dict of metric name -> array of shape (len(qrels),)
    """
    names = list(dict.fromkeys(metrics))
    # save_results_in_run keeps its default: without it ranx 0.3 looks a single
    # metric's scores up under the name stripped of its cutoff (KeyError)
    with ranx_lock():
        scores = evaluate(
            ranx_qrels(qrels), ranx_run(run), names, return_mean=False, make_comparable=True
        )
    # ranx returns the bare array for a single metric
    return {names[0]: scores} if len(names) == 1 else dict(scores)


def compile_kernels(metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS) -> float:
    """Compile ranx's numba kernels once, into numba's on-disk cache.

    ``make install`` calls this, so the first run, test or sweep job on a fresh
    machine loads compiled code instead of compiling it (about a minute on 2 CPU
    cores) and no two sweep jobs compile at the same time. The kernels are the ones
    colcompress calls: building Qrels and Run from dicts, the metrics, and the
    per-query scores of the report's significance tests (:func:`per_query_scores`,
    on a run that misses a judged query and has an unjudged one). Types, not sizes,
    pick the compiled signature, so a two-query example compiles what full runs use.

    Returns
    -------
    float
        Seconds spent (compiling, or loading what is already cached).
    """
    start = time.perf_counter()
    qrels = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
    run = {"q1": {"d1": 2.0, "d4": 1.0}, "q2": {"d3": 1.5, "d2": 0.5}}
    partial = {"q1": {"d4": 2.0, "d2": 1.0}, "q3": {"d2": 1.5, "d3": 0.5}}
    with warnings.catch_warnings():  # ranx's notes on a two-query example
        warnings.simplefilter("ignore")
        compute_metrics(qrels, run, metrics)
        per_query_scores(qrels, run, metrics)
        per_query_scores(qrels, partial, metrics)
    return time.perf_counter() - start


def write_trec_run(run: dict[str, dict[str, float]], path: Path, tag: str = "colcompress") -> None:
    """Write a run in TREC format (atomically, see :func:`colcompress.atomic.atomic_path`)."""
    with atomic_path(path) as tmp, tmp.open("w") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (docid, score) in enumerate(ranked, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
