"""BM25 over a BEIR split (``bm25s``): hard-negative mining (cached) and the BM25 baseline.

Documents are indexed by their ``full_text`` (title + text); queries and documents
share one tokenisation: lower-cased ``\\w\\w+`` tokens, English stopwords removed,
Snowball English stemming (PyStemmer).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenized
from tqdm.auto import tqdm

from colcompress.atomic import write_text_atomic
from colcompress.data.beir import BeirData

__all__ = ["BM25Settings", "bm25_search", "mine_negatives", "negatives_cache_path"]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class BM25Settings:
    """Parameters of the BM25 retriever (all part of the negatives cache key).

    Attributes
    ----------
    k1, b : float
        BM25 term-frequency saturation and length normalisation.
    method : str
        ``bm25s`` scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ...).
    stemmer : str or None
        PyStemmer algorithm name, ``None`` for no stemming.
    stopwords : str or None
        ``bm25s`` stopword list name, ``None`` to keep all tokens.
    """

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"


class _BM25:
    """A BM25 index over ``data.corpus`` (document order = ``doc_ids``); ``progress``
    draws bm25s's bars (tokenising, indexing) and one over the searched queries."""

    def __init__(self, data: BeirData, settings: BM25Settings, progress: bool = False) -> None:
        self.settings = settings
        self.progress = progress
        self.doc_ids = list(data.corpus)
        if settings.stemmer is None:
            self._stemmer = None
        else:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(settings.stemmer)
        corpus_tokens = self.tokenize([doc.full_text for doc in data.corpus.values()], ids=True)
        self._empty = not corpus_tokens.vocab
        self._retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
        if not self._empty:
            self._retriever.index(corpus_tokens, create_empty_token=False, show_progress=progress)

    def tokenize(self, texts: list[str], ids: bool = False) -> list[list[str]] | Tokenized:
        """Tokenise texts: lists of (stemmed) terms, or ids + vocabulary when ``ids``."""
        return bm25s.tokenize(
            texts,
            lower=True,
            stopwords=self.settings.stopwords or [],
            stemmer=self._stemmer,
            return_ids=ids,
            show_progress=self.progress,
        )

    def search(
        self, queries: list[str], k: int, exclude: list[set[str]] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rank documents for each query.

        Parameters
        ----------
        queries : list of str
            Query texts.
        k : int
            Number of documents to return per query at most.
        exclude : list of set of str, optional
            Per query, document ids never to return.

        Returns
        -------
        list of (ndarray[k'], ndarray[k'])
            Per query: document positions (into ``doc_ids``) and their scores, best
            first, only documents with a positive score, ties broken by corpus order.
        """
        position = {docid: i for i, docid in enumerate(self.doc_ids)}
        results = []
        terms_of = self.tokenize(queries)
        bar = tqdm(terms_of, desc="bm25 search", unit="query", disable=not self.progress)
        for qi, terms in enumerate(bar):
            term_ids = [] if self._empty else self._retriever.get_tokens_ids(terms)
            if not term_ids or k <= 0:
                results.append((np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)))
                continue
            scores = self._retriever.get_scores_from_ids(term_ids)
            if exclude is not None and exclude[qi]:
                scores = scores.copy()
                scores[[position[d] for d in exclude[qi] if d in position]] = 0.0
            results.append(_top_k(scores, k))
        return results


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the ``k`` largest positive ``scores[num_docs]``, stably."""
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > k:
        kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
        candidates = candidates[scores[candidates] >= kth]
    order = np.lexsort((candidates, -scores[candidates]))
    top = candidates[order][:k]
    return top, scores[top]


def bm25_search(
    data: BeirData, k: int = 100, settings: BM25Settings | None = None, progress: bool = False
) -> dict[str, dict[str, float]]:
    """Retrieve with BM25 for every query of a split (the baseline row of reports).

    Parameters
    ----------
    data : BeirData
        Corpus and queries.
    k : int
        Documents per query at most; documents sharing no term with the query are
        never returned.
    settings : BM25Settings, optional
        Retriever settings; defaults to ``BM25Settings()``.
    progress : bool
        Draw progress bars (tokenising, indexing, searching).

    Returns
    -------
    dict of str to dict of str to float
        ``run[qid][docid] = score`` (a ranx/pytrec_eval run).
    """
    index = _BM25(data, settings or BM25Settings(), progress)
    qids = list(data.queries)
    ranked = index.search([data.queries[q] for q in qids], k)
    return {
        qid: {index.doc_ids[i]: float(s) for i, s in zip(pos, scores, strict=True)}
        for qid, (pos, scores) in zip(qids, ranked, strict=True)
    }


def _cache_key(data: BeirData, top_k: int, settings: BM25Settings) -> str:
    digest = hashlib.sha256()
    header = {
        "version": _CACHE_VERSION,
        "name": data.name,
        "split": data.split,
        "top_k": top_k,
        "settings": asdict(settings),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for docid, doc in data.corpus.items():
        digest.update(f"\x1ed\x1f{docid}\x1f{doc.full_text}".encode())
    for qid, text in data.queries.items():
        positives = "\x1f".join(sorted(data.positives(qid)))
        digest.update(f"\x1eq\x1f{qid}\x1f{text}\x1f{positives}".encode())
    return digest.hexdigest()


def negatives_cache_path(
    data: BeirData, top_k: int, cache_dir: str | Path, settings: BM25Settings | None = None
) -> Path:
    """Return the cache file that :func:`mine_negatives` reads and writes for these inputs."""
    return _cache_path(data, top_k, cache_dir, _cache_key(data, top_k, settings or BM25Settings()))


def _cache_path(data: BeirData, top_k: int, cache_dir: str | Path, key: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{data.name}-{data.split}-top{top_k}")
    return Path(cache_dir) / "negatives" / f"{stem}-{key[:16]}.json"


def _read_cache(path: Path, key: str, data: BeirData) -> dict[str, list[str]] | None:
    """Return the cached negatives, or ``None`` (with a warning when the file is bad)."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or obj.get("key") != key:
            raise ValueError("key mismatch")
        negatives = obj["negatives"]
        if not isinstance(negatives, dict) or set(negatives) != set(data.queries):
            raise ValueError("query ids differ")
        for ranked in negatives.values():
            if not isinstance(ranked, list) or not all(d in data.corpus for d in ranked):
                raise ValueError("unknown document ids")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(
            f"{path}: ignoring corrupt negatives cache ({exc}); recomputing", stacklevel=3
        )
        return None
    return negatives


def _write_cache(path: Path, key: str, negatives: dict[str, list[str]]) -> None:
    write_text_atomic(json.dumps({"key": key, "negatives": negatives}), path)


def mine_negatives(
    data: BeirData,
    top_k: int = 100,
    cache_dir: str | Path | None = None,
    settings: BM25Settings | None = None,
    progress: bool = False,
) -> dict[str, list[str]]:
    """Mine BM25 hard negatives for every query of a split.

    Parameters
    ----------
    data : BeirData
        Corpus, queries and qrels; documents with qrels score > 0 for a query are
        never its negatives.
    top_k : int
        Candidates kept per query (fewer when fewer documents share a term with it).
    cache_dir : str or Path or None
        Where to cache results (``<cache_dir>/negatives/*.json``, keyed by a hash of
        the dataset name, split, corpus and query ids and texts, positives, ``top_k``
        and ``settings``); ``None`` disables caching. A corrupt cache file is ignored
        with a warning and rewritten.
    settings : BM25Settings, optional
        Retriever settings; defaults to ``BM25Settings()``.
    progress : bool
        Draw progress bars (tokenising, indexing, searching).

    Returns
    -------
    dict of str to list of str
        ``negatives[qid]``: document ids, best BM25 score first, for every query.

    Raises
    ------
    ValueError
        Documents of the corpus are media without text (BM25 reads text).
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    textless = sum(bool(doc.media) and not doc.full_text for doc in data.corpus.values())
    if textless:
        raise ValueError(
            f"BM25 negatives read document text, but {textless} of the {len(data.corpus)} "
            f"documents of {data.name} are media without text: set dataset.num_negatives=0 "
            "(in-batch negatives)"
        )
    settings = settings or BM25Settings()
    path = key = None
    if cache_dir is not None:
        key = _cache_key(data, top_k, settings)
        path = _cache_path(data, top_k, cache_dir, key)
        cached = _read_cache(path, key, data)
        if cached is not None:
            return cached
    index = _BM25(data, settings, progress)
    qids = list(data.queries)
    ranked = index.search(
        [data.queries[q] for q in qids], top_k, exclude=[data.positives(q) for q in qids]
    )
    negatives = {
        qid: [index.doc_ids[i] for i in positions]
        for qid, (positions, _) in zip(qids, ranked, strict=True)
    }
    if path is not None:
        _write_cache(path, key, negatives)
    return negatives
