"""Flat exact MaxSim vs FastPlaid on the same synthetic collection, side by side.

Builds a :class:`~colcompress.index.FlatIndex` and one
:class:`~colcompress.index.FastPlaidIndex` per ``--nbits`` on clustered unit-norm
token vectors, then prints a markdown table of build time, search latency, index size
and top-k recall against the flat (exact) ranking, with ratios to flat::

    python benchmarks/bench_index.py --docs 10000 --vectors 32 --dim 128 --queries 100
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.functional import normalize

from colcompress.index import FastPlaidIndex, FlatIndex, Index, SearchResult


def synthetic_collection(
    n_docs: int,
    n_vectors: int,
    dim: int,
    n_queries: int,
    query_vectors: int,
    n_topics: int,
    noise: float,
    seed: int,
) -> tuple[list[Tensor], list[Tensor]]:
    """Unit-norm token vectors drawn around shared topic directions.

    Each document mixes 4 random topics; each query draws from 3 topics of a random
    document, so there are true near neighbours with score gaps a quantiser can blur.

    Returns
    -------
    docs : list of Tensor[n_vectors, dim]
    queries : list of Tensor[query_vectors, dim]
    """
    gen = torch.Generator().manual_seed(seed)
    topics = normalize(torch.randn(n_topics, dim, generator=gen), dim=-1)
    doc_topics = torch.argsort(torch.rand(n_docs, n_topics, generator=gen), dim=1)[:, :4]

    def sample(chosen: Tensor, n: int) -> Tensor:  # chosen: [B, t] -> [B, n, dim]
        pick = torch.randint(0, chosen.shape[1], (chosen.shape[0], n), generator=gen)
        centres = topics[chosen.gather(1, pick)]
        return normalize(centres + noise * torch.randn(centres.shape, generator=gen), dim=-1)

    docs = list(sample(doc_topics, n_vectors).unbind(0))
    owners = torch.randint(0, n_docs, (n_queries,), generator=gen)
    queries = list(sample(doc_topics[owners, :3], query_vectors).unbind(0))
    return docs, queries


@dataclass
class Row:
    """One index's measurements."""

    name: str
    build_s: float
    search_ms_per_query: float
    size_mb: float
    recall: float


def measure(
    name: str,
    index: Index,
    docs: list[Tensor],
    ids: list[str],
    queries: list[Tensor],
    k: int,
    reference: SearchResult | None,
    repeats: int,
) -> tuple[Row, SearchResult]:
    """Build, search all queries in one call (best of ``repeats``), compare with ``reference``."""
    start = time.perf_counter()
    index.build(docs, ids)
    build_s = time.perf_counter() - start
    index.search(queries[:2], k)  # warm-up: lazy loads, allocator, thread pools
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = index.search(queries, k)
        best = min(best, time.perf_counter() - start)
    ref = reference if reference is not None else result
    recall = sum(len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ref.ids, result.ids, strict=True))
    row = Row(
        name=name,
        build_s=build_s,
        search_ms_per_query=1000 * best / len(queries),
        size_mb=index.size_bytes() / 1e6,
        recall=recall / len(queries),
    )
    return row, result


def table(rows: list[Row], k: int) -> str:
    """Markdown table; ratios are relative to the first (flat) row."""
    flat = rows[0]
    lines = [
        f"| index | build s | search ms/query | index MB | recall@{k} vs flat "
        "| build x flat | search x flat | size x flat |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.build_s:.2f} | {r.search_ms_per_query:.2f} | {r.size_mb:.1f} "
            f"| {r.recall:.3f} | {r.build_s / flat.build_s:.1f} "
            f"| {r.search_ms_per_query / flat.search_ms_per_query:.2f} "
            f"| {r.size_mb / flat.size_mb:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print the environment and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--vectors", type=int, default=32, help="vectors per document")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--query-vectors", type=int, default=32, help="vectors per query")
    parser.add_argument("--topics", type=int, default=256, help="topic directions")
    parser.add_argument("--noise", type=float, default=0.1, help="per-dimension noise std")
    parser.add_argument("--nbits", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="searches timed (best kept)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where indexes go (temp)")
    args = parser.parse_args(argv)

    docs, queries = synthetic_collection(
        args.docs,
        args.vectors,
        args.dim,
        args.queries,
        args.query_vectors,
        args.topics,
        args.noise,
        args.seed,
    )
    ids = [f"doc{i}" for i in range(args.docs)]
    print(
        f"# {args.docs} docs x {args.vectors} vectors, D={args.dim}, {args.queries} queries x "
        f"{args.query_vectors} vectors, k={args.k}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), "
        f"fast-plaid {importlib.metadata.version('fast-plaid')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        flat_row, exact = measure(
            "flat (fp32, exact)",
            FlatIndex(device=args.device),
            docs,
            ids,
            queries,
            args.k,
            None,
            args.repeats,
        )
        rows = [flat_row]
        for nbits in args.nbits:
            index = FastPlaidIndex(Path(tmp) / f"nbits{nbits}", nbits=nbits, device=args.device)
            row, _ = measure(
                f"fast-plaid nbits={nbits}",
                index,
                docs,
                ids,
                queries,
                args.k,
                exact,
                args.repeats,
            )
            rows.append(row)
            print(f"# done: {row.name}", flush=True)
    print(table(rows, args.k))


if __name__ == "__main__":
    main()
