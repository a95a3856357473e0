"""Encode the corpus, build the index, search, and score: the evaluation pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from colcompress.data.beir import BeirData
from colcompress.evaluation.encode import Encoded, encode, encode_sharded
from colcompress.evaluation.metrics import DEFAULT_METRICS, compute_metrics, write_trec_run
from colcompress.evaluation.results import run_label, versions, write_json
from colcompress.index.base import Index
from colcompress.models.colbert import ColBERT

log = logging.getLogger(__name__)


def index_stats(docs: Encoded, index: Index, budget: int | None) -> dict[str, Any]:
    """Size of the index and how much the compressor removed.

    ``compression_ratio`` follows the paper: ``1 - budget / avg_tokens``, with
    ``avg_tokens`` the vectors per document of the uncompressed model; None for
    methods without a fixed budget (relative CRISP, pool factors, lossless).
    ``vector_reduction`` is the measured ``1 - vectors / tokens`` (the two differ
    when documents are shorter than the budget or a method prunes adaptively).

    A budget above the average document length compresses nothing on average:
    ``compression_ratio`` is then clamped at 0 (the formula would go negative) and
    ``budget_note`` says so, with ``docs_within_budget``, the documents no longer
    than the budget (indexed whole).
    """
    n = len(docs.vectors)
    tokens = docs.tokens.float().mean().item()
    vectors = docs.num_vectors
    size = index.size_bytes()
    out: dict[str, Any] = {
        "num_docs": n,
        "num_vectors": vectors,
        "vectors_per_doc": vectors / n,
        "avg_tokens_per_doc": tokens,
        "budget": budget,
        "compression_ratio": (1 - budget / tokens) if budget else None,
        "vector_reduction": 1 - vectors / float(docs.tokens.sum()),
        "index_bytes": size,
        "bytes_per_doc": size / n,
    }
    if budget and budget > tokens:
        within = int((docs.tokens <= budget).sum())
        out["compression_ratio"] = 0.0
        out["docs_within_budget"] = within
        out["budget_note"] = (
            f"budget {budget} is above the average document length ({tokens:.1f} tokens): "
            f"{within} of {n} documents have at most {budget} tokens and are indexed whole, "
            f"so compression_ratio (1 - budget / avg_tokens = {1 - budget / tokens:.3f}) is "
            "clamped at 0; vector_reduction is the measured reduction"
        )
        log.warning("%s", out["budget_note"])
    return out


def evaluate_model(
    model: ColBERT,
    data: BeirData,
    index: Index,
    top_k: int = 100,
    batch_size: int = 32,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    precision: str | None = None,
    output_dir: Path | None = None,
    analyses: list[Callable[[ColBERT, BeirData, Encoded, Encoded], dict[str, Any]]] | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = False,
) -> dict[str, Any] | None:
    """Run the full evaluation pass of one model on one split.

    Under data parallelism every rank calls it: each encodes its shard of the corpus
    (:func:`encode_sharded`), rank 0 gathers the vectors, builds the index, searches
    and scores; the other ranks return None.

    Parameters
    ----------
    model : ColBERT
        Evaluated as is (its compressor's current budget is used).
    data : BeirData
        Corpus, queries and qrels of the evaluation split.
    index : Index
        A fresh index to build (FastPlaid or flat).
    top_k : int
        Documents retrieved per query.
    batch_size : int
        Encoding batch size.
    metrics : sequence of ranx metric names
    precision : str or None
        Encoder autocast precision on CUDA (``"bf16-mixed"``).
    output_dir : Path or None
        Where ``run.trec`` is written.
    analyses : list of callables or None
        Extra analyses ``f(model, data, docs, queries) -> dict`` (e.g. utilization)
        whose results are merged into the returned dict.
    rank, world_size : int
        This process's data-parallel rank and the number of ranks.
    progress : bool
        Draw encoding progress bars (rank 0 only).

    Returns
    -------
    dict or None
        ``metrics``, ``index``, ``timings`` (+ whatever the analyses add) on rank 0.
    """
    doc_ids = list(data.corpus)
    texts = [data.corpus[d].full_text for d in doc_ids]
    query_ids = list(data.queries)
    log.info("encoding %d documents", len(texts))
    counts = model.compressor.counts_pruning
    if counts:
        model.compressor.reset_counts()
    docs = encode_sharded(
        model,
        texts,
        False,
        batch_size,
        precision,
        "corpus",
        rank=rank,
        world_size=world_size,
        progress=progress,
    )
    if docs is None:
        return None
    start = time.perf_counter()
    index.build(docs.vectors, doc_ids)
    build_s = time.perf_counter() - start
    queries = encode(
        model,
        [data.queries[q] for q in query_ids],
        True,
        batch_size,
        precision=precision,
        desc="queries",
        progress=progress,
    )
    start = time.perf_counter()
    result = index.search(queries.vectors, top_k)
    search_s = time.perf_counter() - start
    run = result.as_run(query_ids)
    if output_dir is not None:
        write_trec_run(run, Path(output_dir) / "run.trec")
    budget = getattr(model.compressor, "budget", None)
    out: dict[str, Any] = {
        "metrics": compute_metrics(data.qrels, run, metrics),
        "index": index_stats(docs, index, budget),
        "timings": {
            "encode_corpus_s": docs.seconds,
            "encode_ranks": world_size,
            "docs_per_s": len(texts) / max(docs.seconds, 1e-9),
            "index_build_s": build_s,
            "encode_queries_s": queries.seconds,
            "search_s": search_s,
            "search_ms_per_query": 1000 * search_s / max(len(query_ids), 1),
        },
        "num_queries": len(query_ids),
    }
    if counts:
        out["index"]["prune_ratio"] = float(model.compressor.prune_ratio)
    for analysis in analyses or []:
        out.update(analysis(model, data, docs, queries))
    return out


class IndexEvaluator(L.Callback):
    """Evaluates the trained model when fitting ends and writes ``results.json``.

    Also usable without training: ``IndexEvaluator(...).run(model)``.

    Parameters
    ----------
    data : Callable[[], BeirData]
        Returns the evaluation split (called when evaluation starts, after the
        data module is set up).
    index_factory : Callable[[], Index]
        Builds a fresh index.
    output_dir : str
        The run directory; ``results.json`` and ``run.trec`` go there.
    test_budget : int or None
        Budget to index with when it differs from training (hpool, agc).
    record : dict
        Extra entries for ``results.json`` (config, method, label, ...); a missing or
        null ``label`` becomes :func:`~colcompress.evaluation.results.run_label`.
    baselines : Callable[[], dict] or None
        Computes the reference rows (:func:`~colcompress.evaluation.baselines.
        evaluate_baselines`), on rank 0 only, into ``results.json["baselines"]``.
    kwargs
        Passed to :func:`evaluate_model` (top_k, batch_size, metrics, precision,
        analyses, progress).
    """

    def __init__(
        self,
        data: Callable[[], BeirData],
        index_factory: Callable[[], Index],
        output_dir: str,
        test_budget: int | None = None,
        record: dict[str, Any] | None = None,
        baselines: Callable[[], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.data = data
        self.index_factory = index_factory
        self.output_dir = Path(output_dir)
        self.test_budget = test_budget
        self.record = dict(record or {})
        self.baselines = baselines
        self.kwargs = kwargs
        self.results: dict[str, Any] | None = None

    def run(
        self,
        model: ColBERT,
        loggers: list[Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, Any] | None:
        """Evaluate ``model`` and write ``results.json``; returns its content.

        Every data-parallel rank calls it (each encodes a shard of the corpus); rank 0
        does the rest and the others return None.
        """
        train_budget = model.compressor.budget
        if self.test_budget is not None:
            model.compressor.set_budget(self.test_budget)
        try:
            out = evaluate_model(
                model,
                self.data(),
                self.index_factory(),
                output_dir=self.output_dir,
                rank=rank,
                world_size=world_size,
                **self.kwargs,
            )
        finally:
            model.compressor.budget = train_budget
        if out is None:
            return None
        out["index"]["train_budget"] = train_budget
        record = dict(self.record)
        if record.get("label") is None:
            transfer = train_budget if self.test_budget is not None else None
            record["label"] = run_label(record.get("method", "?"), out["index"]["budget"], transfer)
        if self.baselines is not None:
            record["baselines"] = self.baselines()
        self.results = {**record, **out, "versions": versions()}
        write_json(self.results, self.output_dir / "results.json")
        flat = {f"test/{k}": v for k, v in out["metrics"].items()}
        flat.update({f"index/{k}": v for k, v in out["index"].items() if v is not None})
        flat.update({f"time/{k}": v for k, v in out["timings"].items()})
        for logger in loggers or []:
            logger.log_metrics(flat)
        return self.results

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            self.run(pl_module.model, trainer.loggers, trainer.global_rank, trainer.world_size)
