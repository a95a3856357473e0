"""Corpus encoding and flat MaxSim search against the machine's fp32 matmul rate.

Measures, in one process, corpus encoding of NFCorpus documents with the MiniLM
ColBERT (``compressor=none``, batch by batch) and exact flat MaxSim search of the
NFCorpus test queries over those documents, each slice followed by large fp32 matrix
products of the same FLOPs (the practical ceiling of dense work with torch's threads,
measured for as long and under the same load as the slice; best of ``--repeats``
each). Achieved GFLOP/s = executed FLOPs / wall time:

- encoding: the matrix products torch runs (counted by
  ``torch.utils.flop_counter.FlopCounterMode``: every linear layer and the projection,
  padding included) plus self-attention's ``QK^T`` and ``PV`` products, which the
  counter does not see on CPU (SDPA), counted as ``4 N^2 H`` per layer and sequence;
- search: the ``[queries x (D + 1)] @ [(D + 1) x rows]`` products of
  :class:`~colcompress.index.FlatIndex` over its padded chunks (``useful`` counts only
  real query and document vectors).

::

    python benchmarks/bench_roofline.py --docs 128 --queries 323
"""

from __future__ import annotations

import time
from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode

from benchmarks import common
from colcompress.evaluation.encode import encode
from colcompress.index import FlatIndex
from colcompress.models.colbert import ColBERT

TARGET_FRACTION = 0.5


def batch_flops(model: ColBERT, texts: list[str]) -> float:
    """Executed FLOPs of encoding ``texts`` as one batch.

    The matrix products torch runs, counted by ``FlopCounterMode``, plus
    ``4 * layers * hidden * B * N^2`` for attention's ``QK^T`` and ``PV`` on the
    padded ``[B, N]`` batch (SDPA on CPU is not counted by the counter).
    """
    with FlopCounterMode(display=False) as counter:
        encode(model, texts, False, len(texts))
    config = model.encoder.model.config
    b, n = model.tokenize_documents(texts).input_ids.shape
    return (
        counter.get_total_flops() + 4.0 * config.num_hidden_layers * config.hidden_size * b * n**2
    )


def paired(
    run: Callable[[], float], flops: float, matmul: common.Matmul, repeats: int
) -> tuple[float, float, float]:
    """Best seconds of ``run`` and of the matmul slice of the same FLOPs run right after it.

    Returns
    -------
    workload_s, matmul_s, matmul_flops : float
    """
    work, mm, mm_flops = float("inf"), float("inf"), 0.0
    for _ in range(repeats):
        work = min(work, run())
        seconds, mm_flops = matmul.seconds_for(flops)
        mm = min(mm, seconds)
    return work, mm, mm_flops


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
    p.add_argument("--matmul-size", type=int, default=1024)
    args = p.parse_args(argv)
    n_docs, n_queries = (16, 8) if args.tiny else (args.docs, args.queries)
    base = common.TINY_MODEL if args.tiny else []
    ids, texts, queries = common.nfcorpus(n_docs, n_queries, args.seed)
    model = common.model([*base, "compressor=none"], args.seed)
    env = common.environment(
        f"{n_docs} NFCorpus documents, {len(queries)} test queries, "
        f"{'tiny random' if args.tiny else 'MiniLM'} ColBERT (dim {model.dim}), "
        f"encoding batch {args.batch_size}, flat index fp32; ceiling: "
        f"[{args.matmul_size}]^2 fp32 matmuls of the same FLOPs right after each slice"
    )
    matmul = common.Matmul(args.matmul_size)
    ordered = sorted(texts, key=len, reverse=True)  # the batches encode() forms
    totals = {"encoding": [0.0, 0.0, 0.0, 0.0], "search": [0.0, 0.0, 0.0, 0.0]}
    for start in range(0, n_docs, args.batch_size):
        batch = ordered[start : start + args.batch_size]
        flops = batch_flops(model, batch)  # also the batch's warm-up
        times = paired(
            lambda b=batch: encode(model, b, False, len(b)).seconds, flops, matmul, args.repeats
        )
        for i, value in enumerate((flops, *times)):
            totals["encoding"][i] += value
    docs = encode(model, texts, False, args.batch_size).vectors
    query_vectors = encode(model, queries, True, args.batch_size).vectors
    index = FlatIndex()
    index.build(docs, ids)
    executed, useful = maxsim_flops(
        [d.shape[0] for d in docs], [q.shape[0] for q in query_vectors], model.dim, index
    )
    index.search(query_vectors, 10)  # warm-up

    def search() -> float:
        start = time.perf_counter()
        index.search(query_vectors, 10)
        return time.perf_counter() - start

    totals["search"] = [executed, *paired(search, executed, matmul, args.repeats)]
    rows = []
    for workload, (flops, seconds, mm_s, mm_flops) in totals.items():
        ceiling = mm_flops / mm_s / 1e9
        counts = [("executed", flops)] + ([("useful", useful)] if workload == "search" else [])
        for kind, count in counts:
            name = {
                "encoding": "corpus encoding (linear layers + attention)",
                "search": f"flat MaxSim search ({kind}"
                + (", with padding)" if kind == "executed" else ": real vectors only)"),
            }
            rows.append(
                {
                    "workload": name[workload],
                    "gflop": count / 1e9,
                    "seconds": seconds,
                    "gflops": count / seconds / 1e9,
                    "matmul_gflops": ceiling,
                    "fraction_of_peak": count / seconds / 1e9 / ceiling,
                }
            )
    for row in rows[:2]:
        row["target_met"] = row["fraction_of_peak"] >= TARGET_FRACTION
    print(
        common.markdown_table(
            ["workload", "GFLOP", "s", "GFLOP/s", "matmul GFLOP/s alongside", "of matmul"],
            [
                [
                    r["workload"],
                    r["gflop"],
                    r["seconds"],
                    r["gflops"],
                    r["matmul_gflops"],
                    f"{100 * r['fraction_of_peak']:.0f}%",
                ]
                for r in rows
            ],
        )
    )
    common.write_json(
        args.out,
        env,
        rows,
        target_fraction=TARGET_FRACTION,
        docs_per_s=n_docs / totals["encoding"][1],
        ms_per_query=1000 * totals["search"][1] / len(queries),
    )


if __name__ == "__main__":
    main()
