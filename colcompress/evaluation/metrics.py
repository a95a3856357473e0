"""Retrieval metrics through ranx."""

from __future__ import annotations

from pathlib import Path

from ranx import Qrels, Run, evaluate

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def ranx_qrels(qrels: dict[str, dict[str, int]]) -> Qrels:
    """Build ranx Qrels from ``{qid: {docid: relevance}}``."""
    return Qrels({q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()})


def ranx_run(run: dict[str, dict[str, float]], name: str = "run") -> Run:
    """Build a ranx Run; queries with no retrieved document get an empty ranking."""
    return Run({q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()}, name=name)


def compute_metrics(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Evaluate a run against qrels.

    Queries of ``qrels`` missing from ``run`` count as retrieving nothing (score 0),
    as trec_eval does with ``-c``; run queries without judgements are ignored.

    Parameters
    ----------
    qrels : dict[qid, dict[docid, int]]
    run : dict[qid, dict[docid, float]]
    metrics : sequence of ranx metric names

    Returns
    -------
    dict of metric name -> mean value over the judged queries
    """
    judged = {q: d for q, d in qrels.items() if any(r > 0 for r in d.values())}
    full = {q: run.get(q, {}) for q in judged}
    missing = {q for q, d in full.items() if not d}
    scored = {q: d for q, d in full.items() if d}
    if not scored:
        return {m: 0.0 for m in metrics}
    values = evaluate(ranx_qrels({q: judged[q] for q in scored}), ranx_run(scored), list(metrics))
    if isinstance(values, float):
        values = {metrics[0]: values}
    scale = len(scored) / (len(scored) + len(missing))
    return {m: float(values[m]) * scale for m in metrics}


def write_trec_run(run: dict[str, dict[str, float]], path: Path, tag: str = "colcompress") -> None:
    """Write a run in TREC format (atomically)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (docid, score) in enumerate(ranked, 1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    tmp.replace(path)
