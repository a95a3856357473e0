"""colcompress's indexes against the PLAID index PyLate users get, on the same vectors.

Encodes NFCorpus documents and test queries once (MiniLM ColBERT, projection
initialised from the documents' SVD as training starts, no compression), then builds
and searches, side by side: exact :class:`~colcompress.index.FlatIndex` (the ground
truth), :class:`~colcompress.index.FastPlaidIndex` at nbits 2 and 4 with this
project's defaults (``colcompress/conf/index/fastplaid.yaml``), and fast-plaid called
the way ``pylate.indexes.PLAID`` calls it with its defaults (nbits 4, kmeans_niters 4,
max_points_per_centroid 256, n_ivf_probe 8, n_full_scores 8192, search batch_size
2^18, fast-plaid's own centroid count ``2^floor(log2(16 sqrt(vectors)))`` and
raw-embedding cache below 1,000 documents, searched from the calling thread).
Measures each with ``bench_index.measure`` (build once, search all queries in one call,
best of ``--repeats`` after a warm-up): queries/s, recall of the top-10 against exact
search, index bytes and ratios to flat and to PyLate::

    python benchmarks/bench_peers.py --docs 200
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from fast_plaid import search as fast_plaid_search

from benchmarks import common
from benchmarks.bench_index import measure
from colcompress.evaluation.encode import encode
from colcompress.index import FastPlaidIndex, FlatIndex, Index, SearchResult
from colcompress.index.fastplaid import num_partitions

# pylate.indexes.PLAID / pylate.indexes.FastPlaid constructor defaults
PYLATE_PLAID = {
    "nbits": 4,
    "kmeans_niters": 4,
    "max_points_per_centroid": 256,
    "n_ivf_probe": 8,
    "n_full_scores": 8192,
    "batch_size": 1 << 18,
}


class PyLatePlaid(Index):
    """fast-plaid driven as ``pylate.indexes.FastPlaid`` drives it (defaults, calling thread)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.engine = fast_plaid_search.FastPlaid(index=str(index_dir), device="cpu")
        self.ids: list[str] = []
        self.vectors = 0

    def build(self, doc_vectors: list[torch.Tensor], ids: list[str]) -> None:
        self.engine.create(
            documents_embeddings=doc_vectors,
            kmeans_niters=PYLATE_PLAID["kmeans_niters"],
            max_points_per_centroid=PYLATE_PLAID["max_points_per_centroid"],
            nbits=PYLATE_PLAID["nbits"],
            n_samples_kmeans=None,
        )
        self.ids = list(ids)
        self.vectors = sum(d.shape[0] for d in doc_vectors)

    def search(self, queries: list[torch.Tensor], k: int) -> SearchResult:
        found = self.engine.search(
            queries_embeddings=queries,
            top_k=k,
            batch_size=PYLATE_PLAID["batch_size"],
            n_ivf_probe=PYLATE_PLAID["n_ivf_probe"],
            n_full_scores=PYLATE_PLAID["n_full_scores"],
            show_progress=False,
        )
        return SearchResult(
            ids=[[self.ids[pid] for pid, _ in ranked] for ranked in found],
            scores=[[float(score) for _, score in ranked] for ranked in found],
        )

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.index_dir.rglob("*") if f.is_file())

    @property
    def num_vectors(self) -> int:
        return self.vectors


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, encode, build and search every index, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_peers")
    p.add_argument("--docs", type=int, default=200)
    p.add_argument("--queries", type=int, default=323, help="NFCorpus test queries (all: 323)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="timed searches (best kept)")
    p.add_argument("--workdir", type=Path, default=None, help="where indexes go (a temp dir)")
    args = p.parse_args(argv)
    n_docs, n_queries = (24, 8) if args.tiny else (args.docs, args.queries)
    base = common.TINY_MODEL if args.tiny else []
    ids, texts, query_texts = common.nfcorpus(n_docs, n_queries, args.seed)
    model = common.model([*base, "compressor=none"], args.seed, fit_texts=texts[:64])
    docs = encode(model, texts, False).vectors
    queries = encode(model, query_texts, True).vectors
    vectors = sum(d.shape[0] for d in docs)
    ours = common.config([*base]).index
    env = common.environment(
        f"{n_docs} NFCorpus documents ({vectors} vectors, D={model.dim}), "
        f"{len(queries)} test queries, k={args.k}; colcompress FastPlaid: "
        f"{num_partitions(vectors, ours.partition_factor)} centroids, "
        f"n_full_scores {ours.n_full_scores}, n_ivf_probe {ours.n_ivf_probe}; PyLate PLAID: "
        f"{num_partitions(vectors, 16)} centroids, n_full_scores {PYLATE_PLAID['n_full_scores']}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        indexes: list[tuple[str, Index]] = [
            (
                f"colcompress FastPlaid nbits={nbits}",
                FastPlaidIndex(
                    Path(tmp) / f"ours{nbits}",
                    nbits=nbits,
                    kmeans_niters=ours.kmeans_niters,
                    n_ivf_probe=ours.n_ivf_probe,
                    n_full_scores=ours.n_full_scores,
                    partition_factor=ours.partition_factor,
                ),
            )
            for nbits in (2, 4)
        ]
        indexes.append(("PyLate PLAID defaults (nbits=4)", PyLatePlaid(Path(tmp) / "pylate")))
        first, exact = measure(
            "flat (exact, fp32)", FlatIndex(), docs, ids, queries, args.k, None, args.repeats
        )
        found = [first]
        for name, index in indexes:
            found.append(measure(name, index, docs, ids, queries, args.k, exact, args.repeats)[0])
            print(f"# done: {name}", flush=True)
    rows = [
        {
            "index": r.name,
            "build_s": r.build_s,
            "queries_per_s": 1000 / r.search_ms_per_query,
            "recall_at_k_vs_exact": r.recall,
            "index_bytes": r.size_mb * 1e6,
            "bytes_per_doc": r.size_mb * 1e6 / n_docs,
        }
        for r in found
    ]
    flat = rows[0]
    for row in rows:
        row["qps_x_flat"] = row["queries_per_s"] / flat["queries_per_s"]
        row["size_x_flat"] = row["index_bytes"] / flat["index_bytes"]
    pylate = rows[-1]
    for row in rows:
        row["qps_x_pylate"] = row["queries_per_s"] / pylate["queries_per_s"]
    print(
        common.markdown_table(
            [
                "index",
                "build s",
                "queries/s",
                f"recall@{args.k} vs exact",
                "index MB",
                "KB/doc",
                "qps x flat",
                "qps x PyLate",
                "size x flat",
            ],
            [
                [
                    r["index"],
                    r["build_s"],
                    r["queries_per_s"],
                    r["recall_at_k_vs_exact"],
                    r["index_bytes"] / 1e6,
                    r["bytes_per_doc"] / 1e3,
                    r["qps_x_flat"],
                    r["qps_x_pylate"],
                    r["size_x_flat"],
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows, pylate_defaults=PYLATE_PLAID)


if __name__ == "__main__":
    main()
