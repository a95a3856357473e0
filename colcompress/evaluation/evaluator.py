"""Encode the corpus, build the index, search, and score: the evaluation pass."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from colcompress.data.beir import BeirData
from colcompress.data.conventions import Conventions, auto_query_length
from colcompress.evaluation.encode import Encoded, encode, encode_sharded, encode_to_store
from colcompress.evaluation.metrics import (
    DEFAULT_METRICS,
    compute_metrics,
    drop_identical_ids,
    unjudged_queries,
    write_trec_run,
)
from colcompress.evaluation.results import run_label, versions, write_json
from colcompress.index.base import Index
from colcompress.index.store import VectorStore
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
    ignore_identical_ids: bool = False,
    chunk_docs: int | None = None,
    keep_vectors: bool = False,
) -> dict[str, Any] | None:
    """Run the full evaluation pass of one model on one split.

    Under data parallelism every rank calls it: each encodes its shard of the corpus
    (:func:`encode_sharded`), rank 0 gathers the vectors, builds the index, searches
    and scores; the other ranks return None.

    With ``chunk_docs`` the corpus is encoded that many documents at a time into a
    :class:`~colcompress.index.store.VectorStore` (float16, in ``output_dir/vectors``
    or a temporary folder), the index is built from the store
    (:meth:`Index.build_from_store`) and the analyses read it, so memory does not grow
    with the corpus; the store is deleted at the end unless ``keep_vectors``.

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
    ignore_identical_ids : bool
        Drop a retrieved document whose id is the query's before scoring and writing
        the ranking (BEIR's convention on ArguAna and Quora); one more document is
        retrieved so ``top_k`` remain.
    chunk_docs : int or None
        Documents per chunk of the on-disk vector store; None keeps every vector in
        memory.
    keep_vectors : bool
        Leave the vector store in place after the pass (with ``chunk_docs``).

    Returns
    -------
    dict or None
        ``metrics``, ``index``, ``timings``, ``num_queries``, ``skipped_queries``
        (queries without a relevant document, not scored) (+ whatever the analyses
        add) on rank 0.
    """
    doc_ids = list(data.corpus)
    texts = [model.document_input(d, data.corpus[d]) for d in doc_ids]
    query_ids = list(data.queries)
    log.info("encoding %d documents", len(texts))
    counts = model.compressor.counts_pruning
    if counts:
        model.compressor.reset_counts()
    with _store_dir(output_dir, chunk_docs is not None and rank == 0, keep_vectors) as store:
        encoding = {
            "batch_size": batch_size,
            "precision": precision,
            "desc": "corpus",
            "rank": rank,
            "world_size": world_size,
            "progress": progress,
        }
        if chunk_docs is None:
            docs = encode_sharded(model, texts, False, **encoding)
        else:
            docs = encode_to_store(model, texts, doc_ids, store, chunk_docs, **encoding)
        if docs is None:
            return None
        start = time.perf_counter()
        if isinstance(docs.vectors, VectorStore):
            index.build_from_store(docs.vectors)
        else:
            index.build(list(docs.vectors), doc_ids)
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
        result = index.search(queries.vectors, top_k + ignore_identical_ids)
        search_s = time.perf_counter() - start
        run = result.as_run(query_ids)
        if ignore_identical_ids:
            run = drop_identical_ids(run, top_k)
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
            "skipped_queries": len(unjudged_queries(data.qrels)),
        }
        if counts:
            out["index"]["prune_ratio"] = float(model.compressor.prune_ratio)
        for analysis in analyses or []:
            out.update(analysis(model, data, docs, queries))
    return out


@contextmanager
def _store_dir(output_dir: Path | None, active: bool, keep: bool) -> Iterator[Path | None]:
    """The folder of the corpus vector store, when ``active``: ``output_dir/vectors``,
    or a temporary folder without an ``output_dir``; deleted on exit unless ``keep``."""
    if not active:
        yield None
        return
    path = (
        Path(output_dir) / "vectors"
        if output_dir is not None
        else Path(tempfile.mkdtemp(prefix="colcompress-vectors-"))
    )
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class EvalTarget:
    """One collection a model is evaluated on.

    Attributes
    ----------
    name : str
        The collection's name (its key in a multi-collection ``results.json``).
    data : Callable[[], BeirData]
        Returns the evaluation split (called when its evaluation starts).
    conventions : Conventions
        Its query length and ``ignore_identical_ids``.
    index_factory : Callable[[], Index]
        Builds its fresh index.
    dataset_dir : Path or None
        Its folder, recorded for the report's significance tests.
    output_dir : Path
        Where its ``run.trec`` (and analysis figures) go.
    analyses : list of callables
        Extra analyses ``f(model, data, docs, queries) -> dict`` (e.g. utilization).
    """

    name: str
    data: Callable[[], BeirData]
    conventions: Conventions
    index_factory: Callable[[], Index]
    dataset_dir: Path | None
    output_dir: Path
    analyses: list[Callable[..., dict[str, Any]]] = field(default_factory=list)


def fit_corpus_statistics(model: ColBERT, corpus: dict[str, Any], batch_size: int = 512) -> None:
    """Fit the corpus statistics the compressor needs (IDF pruning, proportional
    budgets) on ``corpus`` (documents by id), as tokenised by ``model``, in batches of
    ``batch_size``; nothing for other compressors."""
    compressor = model.compressor
    if not (compressor.needs_corpus_idf or compressor.needs_corpus_lengths):
        return
    texts = [model.document_input(doc_id, doc) for doc_id, doc in corpus.items()]
    token_ids: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        tok = model.tokenize_documents(texts[start : start + batch_size])
        token_ids.extend(ids[m].tolist() for ids, m in zip(tok.input_ids, tok.mask))
    if compressor.needs_corpus_lengths:
        compressor.fit_lengths([len(ids) for ids in token_ids])
        log.info(
            "mean tokens per document: %.1f (%d documents)", compressor.mean_tokens, len(texts)
        )
    if compressor.needs_corpus_idf:
        compressor.fit_idf(token_ids, vocab_size=len(model.tokenizer))
        log.info("IDF table fitted on %d documents", len(texts))


def resolve_query_length(model: ColBERT, data: BeirData, conventions: Conventions) -> int:
    """The query length a collection is evaluated with: its own, ``auto`` from its
    queries as ``model`` tokenises them, or the model's (None)."""
    setting = conventions.query_length
    if setting is None:
        return model.query_length
    if setting == "auto":
        lengths = model.query_token_lengths(list(data.queries.values()))
        return auto_query_length(lengths, model.max_input_length)
    return int(setting)


def average_metrics(per_collection: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The unweighted mean of each metric over collections (BEIR's "Avg." column)."""
    names = [set(r["metrics"]) for r in per_collection.values()]
    shared = sorted(set.intersection(*names)) if names else []
    return {
        m: sum(r["metrics"][m] for r in per_collection.values()) / len(per_collection)
        for m in shared
    }


class IndexEvaluator(L.Callback):
    """Evaluates the trained model when fitting ends and writes ``results.json``.

    Also usable without training: ``IndexEvaluator(...).run(model)``.

    With one target and ``keyed=False`` the collection's results are the top level of
    ``results.json`` (``metrics``, ``index``, ``baselines``, ...). Otherwise each
    collection's results are under ``collections[<name>]`` and ``average`` holds the
    unweighted mean of every metric (the paper's protocol: train once, evaluate on
    many collections), and each collection's ``run.trec`` is in ``<output_dir>/<name>/``.

    Parameters
    ----------
    targets : list of EvalTarget
        The collections, in report order.
    output_dir : str
        The run directory; ``results.json`` goes there.
    test_budget : int or None
        Budget to index with when it differs from training (hpool, agc).
    record : dict
        Extra entries for ``results.json`` (config, method, label, ...); a missing or
        null ``label`` becomes :func:`~colcompress.evaluation.results.run_label`.
    baselines : Callable or None
        ``f(data, query_length=..., ignore_identical_ids=...) -> dict`` computing the
        reference rows (:func:`~colcompress.evaluation.baselines.evaluate_baselines`)
        of one collection, on rank 0 only, into its ``baselines`` entry.
    keyed : bool
        Write the multi-collection layout even for one target.
    kwargs
        Passed to :func:`evaluate_model` (top_k, batch_size, metrics, precision,
        progress).
    """

    def __init__(
        self,
        targets: list[EvalTarget],
        output_dir: str,
        test_budget: int | None = None,
        record: dict[str, Any] | None = None,
        baselines: Callable[..., dict[str, Any]] | None = None,
        keyed: bool = False,
        **kwargs: Any,
    ) -> None:
        if not targets:
            raise ValueError("IndexEvaluator: no collection to evaluate on")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_datasets: a collection is listed twice ({names})")
        self.targets = targets
        self.output_dir = Path(output_dir)
        self.test_budget = test_budget
        self.record = dict(record or {})
        self.baselines = baselines
        self.keyed = keyed or len(targets) > 1
        self.kwargs = kwargs
        self.results: dict[str, Any] | None = None

    def _evaluate(
        self, model: ColBERT, target: EvalTarget, rank: int, world_size: int
    ) -> dict[str, Any] | None:
        data = target.data()
        fit_corpus_statistics(model, data.corpus)
        query_length = resolve_query_length(model, data, target.conventions)
        ignore = target.conventions.ignore_identical_ids
        model_query_length = model.query_length
        model.query_length = query_length
        try:
            out = evaluate_model(
                model,
                data,
                target.index_factory(),
                output_dir=target.output_dir,
                analyses=target.analyses,
                rank=rank,
                world_size=world_size,
                ignore_identical_ids=ignore,
                **self.kwargs,
            )
        finally:
            model.query_length = model_query_length
        if out is None:
            return None
        out = {"dataset": target.name, "split": data.split, **out}
        if target.dataset_dir is not None:
            out["dataset_dir"] = str(target.dataset_dir.absolute())
        out["query_length"] = query_length
        out["ignore_identical_ids"] = ignore
        if self.baselines is not None:
            out["baselines"] = self.baselines(
                data, query_length=query_length, ignore_identical_ids=ignore
            )
        return out

    def run(
        self,
        model: ColBERT,
        loggers: list[Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, Any] | None:
        """Evaluate ``model`` on every target and write ``results.json``; returns its
        content.

        Every data-parallel rank calls it (each encodes a shard of each corpus); rank 0
        does the rest and the others return None.
        """
        train_budget = model.compressor.budget
        if self.test_budget is not None:
            model.compressor.set_budget(self.test_budget)
        try:
            outs = {t.name: self._evaluate(model, t, rank, world_size) for t in self.targets}
        finally:
            model.compressor.budget = train_budget
        if rank != 0 or any(out is None for out in outs.values()):
            return None
        for out in outs.values():
            out["index"]["train_budget"] = train_budget
        record = dict(self.record)
        if record.get("label") is None:
            transfer = train_budget if self.test_budget is not None else None
            budget = next(iter(outs.values()))["index"]["budget"]
            record["label"] = run_label(record.get("method", "?"), budget, transfer)
        if self.keyed:
            body = {
                **record,
                "dataset": "+".join(outs),
                "collections": outs,
                "average": {"metrics": average_metrics(outs)},
            }
        else:
            body = {**record, **next(iter(outs.values()))}
        self.results = {**body, "versions": versions()}
        write_json(self.results, self.output_dir / "results.json")
        for logger in loggers or []:
            logger.log_metrics(self._flat(outs))
        return self.results

    def _flat(self, outs: dict[str, dict[str, Any]]) -> dict[str, float]:
        """Metrics, index statistics and timings as logger keys (per collection when
        keyed: ``test/<name>/ndcg@10``, and ``test/average/ndcg@10``)."""
        flat: dict[str, float] = {}
        for name, out in outs.items():
            prefix = f"{name}/" if self.keyed else ""
            flat.update({f"test/{prefix}{k}": v for k, v in out["metrics"].items()})
            flat.update({f"index/{prefix}{k}": v for k, v in out["index"].items() if _is_number(v)})
            flat.update({f"time/{prefix}{k}": v for k, v in out["timings"].items()})
        if self.keyed:
            flat.update({f"test/average/{k}": v for k, v in average_metrics(outs).items()})
        return flat

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            self.run(pl_module.model, trainer.loggers, trainer.global_rank, trainer.world_size)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
