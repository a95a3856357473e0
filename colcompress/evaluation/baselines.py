"""Reference rows for every report: BM25, the zero-shot backbone and chance.

- ``bm25``: bm25s with English stemming (the same retriever that mines negatives).
- ``dense``: the backbone as a single-vector model (mean pooling, cosine).
- ``multivector``: the backbone's own token vectors (no projection, L2-normalised)
  scored with exact MaxSim: what late interaction gives before any training.
- ``random``: every query ranks ``top_k`` documents drawn at random (seed 0): chance
  level, the one reference for documents without text (images).

``bm25``, ``dense`` and ``multivector`` read document text and refuse a corpus with
media documents that have none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from colcompress.data.beir import BeirData
from colcompress.data.negatives import bm25_search
from colcompress.evaluation.metrics import DEFAULT_METRICS, compute_metrics, drop_identical_ids
from colcompress.evaluation.results import write_json
from colcompress.index.flat import FlatIndex
from colcompress.models.colbert import ColBERT

log = logging.getLogger(__name__)
BASELINES = ("bm25", "dense", "multivector", "random")
TEXT_BASELINES = ("bm25", "dense", "multivector")


def random_run(
    query_ids: list[str], doc_ids: list[str], k: int, seed: int = 0
) -> dict[str, dict[str, float]]:
    """A chance ranking: each query gets ``k`` distinct documents in a random order.

    Returns
    -------
    dict of str to dict of str to float
        ``run[qid][docid]``, scores ``k, k - 1, ..., 1`` down the ranking.
    """
    rng = np.random.default_rng(seed)
    depth = min(k, len(doc_ids))
    return {
        qid: {
            doc_ids[j]: float(depth - rank)
            for rank, j in enumerate(rng.permutation(len(doc_ids))[:depth].tolist())
        }
        for qid in query_ids
    }


def _topk_run(
    scores: torch.Tensor, query_ids: list[str], doc_ids: list[str], k: int
) -> dict[str, dict[str, float]]:
    values, idx = scores.topk(min(k, scores.shape[1]), dim=1)
    return {
        q: {doc_ids[j]: float(v) for v, j in zip(vs.tolist(), js.tolist())}
        for q, vs, js in zip(query_ids, values, idx)
    }


@torch.no_grad()
def _backbone_vectors(
    model: ColBERT, texts: list[str], is_query: bool, batch_size: int, progress: bool = False
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Token vectors ``[n_i, H]`` (L2-normalised) and mean-pooled ``[n, H]`` vectors.

    Texts are encoded longest first (little padding); outputs are in input order.
    ``progress`` draws a tqdm bar.
    """
    model.eval()
    tokens: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    pooled = torch.zeros(len(texts), model.encoder.hidden_size)
    tokenize = model.tokenize_queries if is_query else model.tokenize_documents
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    bar = tqdm(
        total=len(texts),
        desc="baselines: " + ("queries" if is_query else "corpus"),
        unit="query" if is_query else "doc",
        disable=not progress,
    )
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenize([texts[i] for i in idx])
        hidden = model.encoder(batch.input_ids, batch.attention_mask).hidden
        mask = batch.attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled[idx] = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        normed = F.normalize(hidden, dim=-1)
        for i, v, m in zip(idx, normed, batch.attention_mask.bool()):
            tokens[i] = v[m]
        bar.update(len(idx))
    bar.close()
    return tokens, pooled


def zero_shot_model(backbone: str, query_length: int = 32, doc_length: int = 300) -> ColBERT:
    """The backbone as a multi-vector model before any training (``multivector``).

    Its own token vectors, L2-normalised: no projection (``dim=None`` keeps the
    hidden size with an identity matrix), no query augmentation, every token kept.
    """
    return ColBERT(
        backbone,
        dim=None,
        query_length=query_length,
        doc_length=doc_length,
        query_augmentation=False,
        skip_punctuation=False,
    )


_CACHE_VERSION = 2


def _cache_key(data: BeirData, settings: dict[str, Any]) -> str:
    """SHA-256 of everything a baseline's numbers depend on.

    The dataset name and split, every document (id, full text), every query (id,
    text), every judgement (query id, document id, score), and ``settings``.
    """
    digest = hashlib.sha256()
    header = {"version": _CACHE_VERSION, "name": data.name, "split": data.split, **settings}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for docid, doc in data.corpus.items():
        digest.update(f"\x1ed\x1f{docid}\x1f{doc.full_text}".encode())
    for qid, text in data.queries.items():
        digest.update(f"\x1eq\x1f{qid}\x1f{text}".encode())
    for qid in sorted(data.qrels):
        for docid, score in sorted(data.qrels[qid].items()):
            digest.update(f"\x1er\x1f{qid}\x1f{docid}\x1f{score}".encode())
    return digest.hexdigest()


def _cache_path(cache_dir: Path, data: BeirData, key: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{data.name}-{data.split}")
    return cache_dir / "baselines" / f"{stem}-{key[:16]}.json"


def _read_cache(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """The cached baselines, or ``{}`` (with a warning when the file is unreadable)."""
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or obj.get("key") != key:
            raise ValueError("key mismatch")
        results = obj["baselines"]
        if not isinstance(results, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("metrics"), dict) for r in results.values()
        ):
            raise ValueError("expected {name: {'metrics': {...}, ...}}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        warnings.warn(
            f"{path}: ignoring corrupt baselines cache ({exc}); recomputing", stacklevel=3
        )
        return {}
    return results


def evaluate_baselines(
    data: BeirData,
    backbone: str = "minilm",
    names: list[str] | tuple[str, ...] = BASELINES,
    top_k: int = 100,
    query_length: int = 32,
    doc_length: int = 300,
    batch_size: int = 32,
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    ignore_identical_ids: bool = False,
) -> dict[str, dict[str, Any]]:
    """Evaluate the reference baselines on one split (cached on disk).

    Parameters
    ----------
    data : BeirData
    backbone : str
        The zero-shot backbone (the trained model's starting point).
    names : sequence of {"bm25", "dense", "multivector", "random"}
    top_k : int
    query_length, doc_length : int
        Truncation lengths (the trained model's).
    batch_size : int
    metrics : sequence of ranx metric names
    cache_dir : path or None
        Results are cached under ``cache_dir/baselines``, keyed by a hash of the
        dataset name and split, the corpus, query and qrels contents and the
        settings. A corrupt or mismatching cache file is ignored with a warning and
        rewritten.
    progress : bool
        Draw progress bars (BM25, encoding, search).
    ignore_identical_ids : bool
        Drop a retrieved document whose id is the query's, as the evaluated model's
        ranking does (see :func:`~colcompress.evaluation.metrics.drop_identical_ids`).

    Returns
    -------
    dict of baseline name -> {"metrics": ..., "seconds": ...}
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}: choose from {list(BASELINES)}")
    settings = {
        "backbone": backbone,
        "top_k": top_k,
        "query_length": query_length,
        "doc_length": doc_length,
        "metrics": list(metrics),
        "ignore_identical_ids": ignore_identical_ids,
    }
    key = _cache_key(data, settings)
    cache = _cache_path(Path(cache_dir), data, key) if cache_dir else None
    cached = _read_cache(cache, key) if cache is not None else {}
    out = {n: cached[n] for n in names if n in cached}
    todo = [n for n in names if n not in out]
    textless = sum(bool(doc.media) and not doc.full_text for doc in data.corpus.values())
    reading = [n for n in todo if n in TEXT_BASELINES]
    if reading and textless:
        raise ValueError(
            f"evaluation.baselines {reading} read document text, but {textless} of the "
            f"{len(data.corpus)} documents of {data.name} are media without text: "
            "use evaluation.baselines=[random]"
        )
    if "random" in todo:
        start = time.perf_counter()
        run = random_run(list(data.queries), list(data.corpus), top_k + ignore_identical_ids)
        if ignore_identical_ids:
            run = drop_identical_ids(run, top_k)
        out["random"] = {
            "metrics": compute_metrics(data.qrels, run, metrics),
            "seconds": time.perf_counter() - start,
        }
    if "bm25" in todo:
        start = time.perf_counter()
        run = bm25_search(data, top_k + ignore_identical_ids, progress=progress)
        if ignore_identical_ids:
            run = drop_identical_ids(run, top_k)
        out["bm25"] = {
            "metrics": compute_metrics(data.qrels, run, metrics),
            "seconds": time.perf_counter() - start,
        }
    neural = [n for n in todo if n in ("dense", "multivector")]
    if neural:
        out.update(
            _neural_baselines(
                data,
                backbone,
                neural,
                top_k,
                query_length,
                doc_length,
                batch_size,
                metrics,
                progress,
                ignore_identical_ids,
            )
        )
    if cache is not None and todo:
        write_json({"key": key, "baselines": {**cached, **out}}, cache)
    return {n: out[n] for n in names}


def _neural_baselines(
    data: BeirData,
    backbone: str,
    names: list[str],
    top_k: int,
    query_length: int,
    doc_length: int,
    batch_size: int,
    metrics: tuple[str, ...] | list[str],
    progress: bool,
    ignore_identical_ids: bool,
) -> dict[str, dict[str, Any]]:
    depth = top_k + ignore_identical_ids

    def scored(run: dict[str, dict[str, float]]) -> dict[str, float]:
        if ignore_identical_ids:
            run = drop_identical_ids(run, top_k)
        return compute_metrics(data.qrels, run, metrics)

    model = zero_shot_model(backbone, query_length, doc_length)
    doc_ids, query_ids = list(data.corpus), list(data.queries)
    start = time.perf_counter()
    log.info("baselines: encoding %d documents with the zero-shot backbone", len(doc_ids))
    doc_tokens, doc_pooled = _backbone_vectors(
        model, [data.corpus[d].full_text for d in doc_ids], False, batch_size, progress
    )
    q_tokens, q_pooled = _backbone_vectors(
        model, [data.queries[q] for q in query_ids], True, batch_size, progress
    )
    encode_s = time.perf_counter() - start
    out: dict[str, dict[str, Any]] = {}
    if "dense" in names:
        start = time.perf_counter()
        run = _topk_run(q_pooled @ doc_pooled.T, query_ids, doc_ids, depth)
        out["dense"] = {
            "metrics": scored(run),
            "seconds": encode_s + time.perf_counter() - start,
        }
    if "multivector" in names:
        start = time.perf_counter()
        index = FlatIndex(progress=progress)
        index.build(doc_tokens, doc_ids)
        result = index.search(q_tokens, depth)
        out["multivector"] = {
            "metrics": scored(result.as_run(query_ids)),
            "seconds": encode_s + time.perf_counter() - start,
        }
    return out
