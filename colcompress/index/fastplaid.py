"""PLAID index on disk through fast-plaid (residual quantisation + IVF candidate search)."""

from __future__ import annotations

import gc
import json
import math
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fast_plaid import search as fast_plaid_search
from fast_plaid.search import fast_plaid as fast_plaid_module
from torch import Tensor

from colcompress.atomic import make_temp_dir, swap_into_place
from colcompress.index.base import Index, SearchResult
from colcompress.index.checks import validate_documents, validate_queries
from colcompress.index.store import VectorStore

SUPPORTED_NBITS = (1, 2, 4, 8)
IDS_FILE = "ids.json"
_METADATA_FILE = "metadata.json"


def _check_nbits(nbits: int) -> None:
    """Raise unless ``nbits`` is a residual width fast-plaid 1.7 can search."""
    if nbits not in SUPPORTED_NBITS:
        raise ValueError(
            f"FastPlaidIndex: nbits={nbits!r} is not supported; expected one of "
            f"{SUPPORTED_NBITS} (fast-plaid builds 3-bit indexes but its search fails on them)"
        )


_KMEANS_LOCK = threading.Lock()


def num_partitions(total_vectors: int, factor: float) -> int:
    """PLAID's centroid count ``2 ** floor(log2(factor * sqrt(total_vectors)))``.

    fast-plaid uses ``factor = 16``. Assigning every vector to its centroid costs
    ``O(total_vectors * partitions)`` and dominates CPU builds (fast-plaid computes in
    fp16, which CPUs emulate slowly), so CPU configs use a smaller factor.
    """
    return max(1, 2 ** math.floor(math.log2(max(factor * math.sqrt(total_vectors), 1.0))))


@contextmanager
def _partitions(count: int) -> Iterator[None]:
    """Make fast-plaid's ``create`` use ``count`` k-means centroids.

    fast-plaid 1.7 computes the count inside ``create`` without exposing it; its
    ``compute_kmeans`` accepts ``num_partitions``, so the module-level function is
    wrapped for the duration of one build (serialised by a lock).
    """
    with _KMEANS_LOCK:
        original = fast_plaid_module.compute_kmeans
        fast_plaid_module.compute_kmeans = partial(original, num_partitions=count)
        try:
            yield
        finally:
            fast_plaid_module.compute_kmeans = original


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Leave the objects that exist now out of garbage collections until the block ends.

    fast-plaid calls ``gc.collect()`` about ten times per ``update``, and each walks every
    object of the process: in a training run that measured seconds per update. Frozen
    objects are skipped, so those collections only walk what the build creates.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class FastPlaidIndex(Index):
    """A fast-plaid (PLAID) index living in ``index_dir``.

    Document vectors are assigned to k-means centroids and stored as centroid codes
    plus ``nbits``-per-dimension quantised residuals. Search probes the
    ``n_ivf_probe`` nearest centroids of every query token for candidates, prunes them
    with centroid scores, then rescores the best with decompressed vectors.

    ``build`` writes the index to a temporary sibling directory and renames it into
    place only when complete, so a failed build never damages an existing index. The
    int -> str id mapping is kept in ``index_dir/ids.json``; :meth:`load` reopens it.

    Parameters
    ----------
    index_dir : str or os.PathLike
        Directory of the index (created by :meth:`build`).
    nbits : int
        Bits per residual dimension, one of 1, 2, 4, 8.
    kmeans_niters : int
        k-means iterations for the centroids.
    n_ivf_probe : int
        Centroids probed per query token.
    n_full_scores : int
        Candidates kept for the centroid-pruned scoring stage; fast-plaid fully
        rescores a quarter of them, so at least ``4 * k`` is always used.
    device : str
        ``"cpu"`` or a CUDA device, for building and searching.
    batch_size : int
        Documents compressed per batch while building.
    seed : int
        Seed of the k-means sampling and initialisation.
    n_samples_kmeans : int or None
        Documents sampled for k-means; None lets fast-plaid choose
        (``min(1 + 16 * sqrt(120 * num_docs), num_docs)``).
    n_processes : int or None
        CPU search threads over query chunks; None lets fast-plaid choose.
    partition_factor : float
        Number of k-means centroids is ``2 ** floor(log2(partition_factor *
        sqrt(total vectors)))`` (see :func:`num_partitions`); fast-plaid's own
        choice is 16.
    progress : bool
        Let fast-plaid draw its search progress bar. fast-plaid's build draws its own
        bar on a terminal whatever this says (its ``create`` has no switch).
    relu : bool
        Must be False: fast-plaid scores plain MaxSim, it cannot clamp each query
        token's maximum at 0 (ColBERT_P). Appending a zero vector to every document
        would be exact before quantisation, but a zero vector's residual (minus its
        centroid) lies far outside the residual buckets and decodes to a vector that
        scores up to ~0.3 per token. Use :class:`FlatIndex` for ColBERT_P.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str],
        nbits: int = 4,
        kmeans_niters: int = 4,
        n_ivf_probe: int = 8,
        n_full_scores: int = 4096,
        device: str = "cpu",
        batch_size: int = 25_000,
        seed: int = 42,
        n_samples_kmeans: int | None = None,
        n_processes: int | None = None,
        partition_factor: float = 16.0,
        progress: bool = False,
        relu: bool = False,
    ) -> None:
        _check_nbits(nbits)
        if relu:
            raise ValueError(
                "FastPlaidIndex: relu=True (model.scoring=maxsim_relu, ColBERT_P) is not "
                "supported: fast-plaid scores plain MaxSim; use index=flat"
            )
        if partition_factor <= 0:
            raise ValueError(
                f"FastPlaidIndex: partition_factor={partition_factor!r}; expected a positive number"
            )
        self.partition_factor = partition_factor
        self.index_dir = Path(index_dir)
        self.nbits = nbits
        self.kmeans_niters = kmeans_niters
        self.n_ivf_probe = n_ivf_probe
        self.n_full_scores = n_full_scores
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.n_samples_kmeans = n_samples_kmeans
        self.n_processes = n_processes
        self.progress = progress
        self._engine: fast_plaid_search.FastPlaid | None = None
        self._ids: list[str] = []
        self._dim = 0
        self._num_vectors = 0

    @classmethod
    def load(cls, index_dir: str | os.PathLike[str], **kwargs: object) -> FastPlaidIndex:
        """Reopen an index written by :meth:`build`.

        Parameters
        ----------
        index_dir : str or os.PathLike
            Directory holding the fast-plaid files and ``ids.json``.
        **kwargs
            Search and device options of the constructor (``n_ivf_probe``,
            ``n_full_scores``, ``device``, ``n_processes``, ``progress``); ``nbits`` is
            read from disk.

        Returns
        -------
        FastPlaidIndex
            Ready to search.
        """
        path = Path(index_dir)
        for name in (_METADATA_FILE, IDS_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(
                    f"FastPlaidIndex.load: {path / name} not found; expected an index "
                    "directory written by FastPlaidIndex.build"
                )
        meta = json.loads((path / _METADATA_FILE).read_text())
        index = cls(path, nbits=int(meta["nbits"]), **kwargs)  # type: ignore[arg-type]
        index._open()
        return index

    def _open(self) -> None:
        """Load the index files in ``index_dir`` into a fast-plaid engine."""
        meta = json.loads((self.index_dir / _METADATA_FILE).read_text())
        ids = json.loads((self.index_dir / IDS_FILE).read_text())
        if len(ids) != meta["num_documents"]:
            raise ValueError(
                f"FastPlaidIndex: {self.index_dir / IDS_FILE} holds {len(ids)} ids but "
                f"{self.index_dir / _METADATA_FILE} counts {meta['num_documents']} documents"
            )
        engine = fast_plaid_search.FastPlaid(index=str(self.index_dir), device=self.device)
        if any(loaded is None for loaded in engine.indices.values()):
            raise RuntimeError(f"FastPlaidIndex: fast-plaid could not load {self.index_dir}")
        centroids = np.load(self.index_dir / "centroids.npy", mmap_mode="r")
        self._engine = engine
        self._ids = ids
        self._dim = int(centroids.shape[1])
        self._num_vectors = int(meta["num_embeddings"])

    def build(self, doc_vectors: list[Tensor], ids: list[str]) -> None:
        """Build the index in a temporary sibling directory, then move it to ``index_dir``.

        Parameters
        ----------
        doc_vectors : list of Tensor[m_i, D]
            One tensor per document, padding removed (``m_i >= 1``).
        ids : list of str
            Unique document ids aligned with ``doc_vectors``.
        """
        validate_documents(doc_vectors, ids, "FastPlaidIndex.build")
        total = sum(int(d.shape[0]) for d in doc_vectors)

        def fill(engine: fast_plaid_search.FastPlaid) -> list[str]:
            with _partitions(num_partitions(total, self.partition_factor)):
                engine.create(
                    documents_embeddings=[d.detach().to("cpu", torch.float32) for d in doc_vectors],
                    n_samples_kmeans=self.n_samples_kmeans,
                    **self._create_options(),
                )
            return list(ids)

        self._build_with(fill, "FastPlaidIndex.build")

    def build_from_store(self, store: VectorStore) -> None:
        """Build the index from a store, one chunk in memory at a time.

        fast-plaid computes its centroids from the documents ``create`` gets, so
        ``create`` is given a seeded random sample of the whole store (fast-plaid's own
        sample size, or ``n_samples_kmeans``, capped at the largest chunk's document
        count), with as many centroids as :meth:`build` would use for the whole store;
        the other documents of each chunk are then added with fast-plaid's ``update``
        (which adds a centroid where a document's vectors lie far from every centroid).
        Documents go in as float16 views of the store's chunks, never copied to
        float32 as a whole. The index's document order (``ids.json``) is the sample,
        then the rest in store order.

        Parameters
        ----------
        store : VectorStore
        """
        sample = self._kmeans_sample(store)

        def fill(engine: fast_plaid_search.FastPlaid) -> list[str]:
            with _partitions(num_partitions(store.num_vectors, self.partition_factor)):
                engine.create(
                    documents_embeddings=store.gather(sample),
                    n_samples_kmeans=len(sample),  # all of it
                    **self._create_options(),
                )
            order = list(sample)
            chosen = set(sample)
            for c in range(store.num_chunks):
                span = store.chunk_range(c)
                rest = [i for i in span if i not in chosen]
                if not rest:
                    continue
                views = store.chunk(c)
                engine.update(
                    documents_embeddings=[views[i - span.start] for i in rest],
                    batch_size=self.batch_size,
                    kmeans_niters=self.kmeans_niters,
                    seed=self.seed,
                    start_from_scratch=0,  # never rebuild from a raw copy (there is none)
                    buffer_size=1,  # every update places its documents at once, no buffer
                )
                del views
                order.extend(rest)
            return [store.ids[i] for i in order]

        self._build_with(fill, "FastPlaidIndex.build_from_store")

    def _kmeans_sample(self, store: VectorStore) -> list[int]:
        """Store positions of the documents ``create`` gets, ascending (seeded)."""
        n = len(store)
        size = self.n_samples_kmeans or 1 + int(16 * math.sqrt(120 * n))
        size = min(size, n, max(len(store.chunk_range(c)) for c in range(store.num_chunks)))
        generator = torch.Generator().manual_seed(self.seed)
        return sorted(torch.randperm(n, generator=generator)[:size].tolist())

    def _create_options(self) -> dict[str, Any]:
        return {
            "kmeans_niters": self.kmeans_niters,
            "nbits": self.nbits,
            "batch_size": self.batch_size,
            "seed": self.seed,
            # Never keep a raw copy of the embeddings (fast-plaid's rebuild-on-update
            # cache): size_bytes counts files, and a store build must stay bounded.
            "start_from_scratch": 0,
        }

    def _build_with(
        self, fill: Callable[[fast_plaid_search.FastPlaid], list[str]], where: str
    ) -> None:
        """Run ``fill`` (which creates the index and returns its ids in index order) on
        an engine in a temporary sibling directory, then move that to ``index_dir``."""
        _check_nbits(self.nbits)
        target = self.index_dir
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"{where}: {target} exists and is not a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = make_temp_dir(target.parent, prefix=f".{target.name}.tmp-")
        try:
            engine = fast_plaid_search.FastPlaid(index=str(staging), device=self.device)
            with _gc_frozen():
                ids = fill(engine)
            engine.close()
            (staging / IDS_FILE).write_text(json.dumps(ids))
            swap_into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._engine = None
        self._open()

    def search(self, queries: list[Tensor], k: int) -> SearchResult:
        """Rank documents for each query by approximate (PLAID) MaxSim.

        Parameters
        ----------
        queries : list of Tensor[l_q, D]
            One tensor per query, padding removed.
        k : int
            Results per query. At most ``min(k, number of documents)`` are returned,
            and fewer when the IVF probe reaches fewer documents.

        Returns
        -------
        SearchResult
            Ids and scores, best first.
        """
        if self._engine is None:
            raise RuntimeError(
                f"FastPlaidIndex.search: no index open for {self.index_dir}; "
                "call build() or FastPlaidIndex.load() first"
            )
        validate_queries(queries, self._dim, k, "FastPlaidIndex.search")
        if not queries:
            return SearchResult(ids=[], scores=[])
        k = min(k, len(self._ids))
        # Run fast-plaid from a worker thread: called from the main thread, its CPU search
        # (many small libtorch ops) measured ~25x slower on 2 busy cores (2.1 s vs 88 ms
        # per query), as fast-plaid's own joblib worker threads already avoid.
        with ThreadPoolExecutor(max_workers=1) as worker:
            results = worker.submit(
                self._engine.search,
                queries_embeddings=[q.detach().to("cpu", torch.float32) for q in queries],
                top_k=k,
                n_full_scores=max(self.n_full_scores, 4 * k),
                n_ivf_probe=self.n_ivf_probe,
                show_progress=self.progress,
                n_processes=self.n_processes,
            ).result()
        return SearchResult(
            ids=[[self._ids[pid] for pid, _ in ranked] for ranked in results],
            scores=[[float(score) for _, score in ranked] for ranked in results],
        )

    def size_bytes(self) -> int:
        """Bytes of all files in ``index_dir`` (0 before an index is open)."""
        if self._engine is None:
            return 0
        return _dir_bytes(self.index_dir)

    @property
    def num_vectors(self) -> int:
        """Total number of indexed document vectors."""
        return self._num_vectors
