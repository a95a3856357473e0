"""Corpus encoding and flat MaxSim search against the machine's fp32 matmul rate.

Measures, in one process: a large fp32 matrix product (the practical ceiling of
dense work with torch's threads), corpus encoding of NFCorpus documents with the
MiniLM ColBERT (``compressor=none``) and exact flat MaxSim search of the NFCorpus test
queries over those documents. Achieved GFLOP/s = executed FLOPs / best wall time:

- encoding: the matrix products torch runs (counted by
  ``torch.utils.flop_counter.FlopCounterMode``: every linear layer and the projection,
  padding included) plus self-attention's ``QK^T`` and ``PV`` products, which the
  counter does not see on CPU (SDPA), counted as ``4 N^2 H`` per layer and sequence;
- search: the ``[queries x (D + 1)] @ [(D + 1) x rows]`` products of
  :class:`~colcompress.index.FlatIndex` over its padded chunks (``useful`` counts only
  real query and document vectors).

::

    python benchmarks/bench_roofline.py --docs 256 --queries 323
"""

from __future__ import annotations

import time

from torch.utils.flop_counter import FlopCounterMode

from benchmarks import common
from colcompress.evaluation.encode import encode
from colcompress.index import FlatIndex
from colcompress.models.colbert import ColBERT

TARGET_FRACTION = 0.5


def encoding_flops(model: ColBERT, texts: list[str], batch_size: int) -> tuple[float, float]:
    """Executed FLOPs of ``encode(model, texts, False, batch_size)``.

    Returns
    -------
    counted : float
        Matrix products seen by ``FlopCounterMode`` (linear layers, projection).
    attention : float
        ``4 * layers * hidden * sum_b B * N_b^2`` over the padded batches ``[B, N_b]``
        that :func:`encode` forms (longest texts first).
    """
    with FlopCounterMode(display=False) as counter:
        encode(model, texts, False, batch_size)
    config = model.encoder.model.config
    order = sorted(texts, key=len, reverse=True)
    pairs = 0
    for start in range(0, len(order), batch_size):
        shape = model.tokenize_documents(order[start : start + batch_size]).input_ids.shape
        pairs += shape[0] * shape[1] ** 2
    attention = 4.0 * config.num_hidden_layers * config.hidden_size * pairs
    return float(counter.get_total_flops()), attention


def maxsim_flops(
    doc_lengths: list[int], query_lengths: list[int], dim: int, index: FlatIndex
) -> tuple[float, float]:
    """Executed and useful FLOPs of one :meth:`FlatIndex.search` of every query.

    FlatIndex sorts documents by length into chunks of ``batch_size`` padded to the
    chunk's longest, and queries (longest first) into blocks of ``query_batch_size``
    padded likewise; one product per (block, chunk) over ``dim + 1`` coordinates.
    """
    docs = sorted(doc_lengths)
    rows = sum(
        len(docs[i : i + index.batch_size]) * max(docs[i : i + index.batch_size])
        for i in range(0, len(docs), index.batch_size)
    )
    queries = sorted(query_lengths, reverse=True)
    query_rows = sum(
        len(queries[i : i + index.query_batch_size]) * queries[i]
        for i in range(0, len(queries), index.query_batch_size)
    )
    executed = 2.0 * query_rows * (dim + 1) * rows
    useful = 2.0 * sum(query_lengths) * dim * sum(doc_lengths)
    return executed, useful


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure the three rates, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_roofline")
    p.add_argument("--docs", type=int, default=128)
    p.add_argument("--queries", type=int, default=323, help="NFCorpus test queries (all: 323)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each (best kept)")
    p.add_argument("--matmul-size", type=int, default=2048)
    args = p.parse_args(argv)
    n_docs, n_queries = (16, 8) if args.tiny else (args.docs, args.queries)
    base = common.TINY_MODEL if args.tiny else []
    ids, texts, queries = common.nfcorpus(n_docs, n_queries, args.seed)
    model = common.model([*base, "compressor=none"], args.seed)
    env = common.environment(
        f"{n_docs} NFCorpus documents, {len(queries)} test queries, "
        f"{'tiny random' if args.tiny else 'MiniLM'} ColBERT (dim {model.dim}), "
        f"encoding batch {args.batch_size}, flat index fp32, "
        f"peak: [{args.matmul_size}]^2 fp32 matmul"
    )
    peak = common.matmul_gflops(args.matmul_size)
    counted, attention = encoding_flops(model, texts, args.batch_size)  # also the warm-up
    encode_s, encoded = common.best_seconds(
        lambda: encode(model, texts, False, args.batch_size), args.repeats, warmup=False
    )
    docs = encoded.vectors
    query_vectors = encode(model, queries, True, args.batch_size).vectors
    index = FlatIndex()
    start = time.perf_counter()
    index.build(docs, ids)
    build_s = time.perf_counter() - start
    search_s, _ = common.best_seconds(lambda: index.search(query_vectors, 10), args.repeats)
    executed, useful = maxsim_flops(
        [d.shape[0] for d in docs], [q.shape[0] for q in query_vectors], model.dim, index
    )
    peak_after = common.matmul_gflops(args.matmul_size)  # load may change during the run
    peak = max(peak, peak_after)
    rows = [
        {
            "workload": f"fp32 matmul {args.matmul_size}^3",
            "gflop": 2 * args.matmul_size**3 / 1e9,
            "seconds": 2 * args.matmul_size**3 / 1e9 / peak,
            "gflops": peak,
        },
        {
            "workload": "corpus encoding (linear layers + attention)",
            "gflop": (counted + attention) / 1e9,
            "seconds": encode_s,
            "gflops": (counted + attention) / encode_s / 1e9,
        },
        {
            "workload": "flat MaxSim search (executed, with padding)",
            "gflop": executed / 1e9,
            "seconds": search_s,
            "gflops": executed / search_s / 1e9,
        },
        {
            "workload": "flat MaxSim search (useful: real vectors)",
            "gflop": useful / 1e9,
            "seconds": search_s,
            "gflops": useful / search_s / 1e9,
        },
    ]
    for row in rows:
        row["fraction_of_peak"] = row["gflops"] / peak
    rows[1]["target_met"] = rows[1]["fraction_of_peak"] >= TARGET_FRACTION
    rows[2]["target_met"] = rows[2]["fraction_of_peak"] >= TARGET_FRACTION
    print(
        common.markdown_table(
            ["workload", "GFLOP", "s", "GFLOP/s", "of matmul peak"],
            [
                [
                    r["workload"],
                    r["gflop"],
                    r["seconds"],
                    r["gflops"],
                    f"{100 * r['fraction_of_peak']:.0f}%",
                ]
                for r in rows
            ],
        )
    )
    print(
        f"# encoding: {counted / 1e9:.2f} GFLOP counted matmuls + {attention / 1e9:.2f} attention; "
        f"{n_docs / encode_s:.1f} docs/s; search {1000 * search_s / len(queries):.1f} ms/query, "
        f"flat build {build_s:.2f} s"
    )
    common.write_json(
        args.out,
        env,
        rows,
        target_fraction=TARGET_FRACTION,
        docs_per_s=n_docs / encode_s,
        ms_per_query=1000 * search_s / len(queries),
    )


if __name__ == "__main__":
    main()
