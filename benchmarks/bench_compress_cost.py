"""What each compressor adds to corpus encoding, against ``none``, side by side.

Encodes the same NFCorpus documents with the same MiniLM encoder and projection once
per compressor (untrained compressor parameters: timing does not depend on their
values), batch by batch with every compressor back to back on each batch, so a load
change on the shared machine hits every compressor alike; for every (compressor,
batch) the best of ``--rounds`` is kept, and a compressor's time is their sum. The
compressor's own forward is timed separately with module hooks; ``added`` is the whole
encoding's extra time over ``none``, which also counts what a compressor changes in
the encoder (memtok's and agc's appended tokens, agc's attention rows of its universal
queries)::

    python benchmarks/bench_compress_cost.py --docs 96 --rounds 3
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks import common
from colcompress.evaluation.encode import encode
from colcompress.models.colbert import ColBERT

TARGET_ADDED = 0.10


@contextmanager
def compressor_clock(model: ColBERT) -> Iterator[list[float]]:
    """Accumulate the seconds spent in ``model.compressor``'s forward into ``[total]``."""
    total = [0.0]
    started = [0.0]

    def before(*_: object) -> None:
        started[0] = time.perf_counter()

    def after(*_: object) -> None:
        total[0] += time.perf_counter() - started[0]

    handles = [
        model.compressor.register_forward_pre_hook(before),
        model.compressor.register_forward_hook(after),
    ]
    try:
        yield total
    finally:
        for h in handles:
            h.remove()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, encode once per compressor and round, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_compress_cost")
    p.add_argument("--docs", type=int, default=96)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best kept)")
    p.add_argument("--budget", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--only", nargs="*", default=None, help="labels to run (none always runs)")
    args = p.parse_args(argv)
    n_docs = 8 if args.tiny else args.docs
    base = common.TINY_MODEL if args.tiny else []
    _, texts, _ = common.nfcorpus(n_docs, 0, args.seed)
    chosen = [
        (label, ov)
        for label, ov in common.COMPRESSORS
        if args.only is None or label == "none" or label in args.only
    ]
    env = common.environment(
        f"{n_docs} NFCorpus documents, budget {args.budget}, batch {args.batch_size}, "
        f"compressors interleaved per batch, best of {args.rounds} rounds per batch, "
        f"{'tiny random' if args.tiny else 'MiniLM'} encoder, untrained compressor parameters"
    )
    models = {
        label: common.model([*base, *ov, f"budget={args.budget}"], args.seed)
        for label, ov in chosen
    }
    for m in models.values():  # warm-up: allocator, thread pools, lazy imports
        encode(m, texts[: args.batch_size // 4 or 1], False, args.batch_size)
    # per batch, every compressor back to back (a load change hits all of them alike);
    # per (compressor, batch) the best round; a compressor's time is the sum over batches
    ordered = sorted(texts, key=len, reverse=True)
    batches = [ordered[i : i + args.batch_size] for i in range(0, n_docs, args.batch_size)]
    best = {label: [(float("inf"), 0.0, 0)] * len(batches) for label in models}
    for _ in range(args.rounds):
        for b, batch in enumerate(batches):
            for label, m in models.items():
                with compressor_clock(m) as inside:
                    out = encode(m, batch, False, args.batch_size)
                if out.seconds < best[label][b][0]:
                    best[label][b] = (out.seconds, inside[0], out.num_vectors)
    best = {label: tuple(map(sum, zip(*per_batch))) for label, per_batch in best.items()}
    ref = best["none"][0]
    rows = []
    for label, _ in chosen:
        seconds, inside, vectors = best[label]
        added = seconds / ref - 1
        lp = label.startswith("lossless LP")
        rows.append(
            {
                "compressor": label,
                "encode_s": seconds,
                "docs_per_s": n_docs / seconds,
                "compressor_s": inside if label != "none" else 0.0,
                "compressor_share": inside / seconds if label != "none" else 0.0,
                "added": added,
                "vectors_per_doc": vectors / n_docs,
                "target_met": None if lp or label == "none" else added <= TARGET_ADDED,
            }
        )
    print(
        common.markdown_table(
            [
                "compressor",
                "encode s",
                "docs/s",
                "in compressor s",
                "compressor share",
                "added vs none",
                "vectors/doc",
                "<= 10%",
            ],
            [
                [
                    r["compressor"],
                    r["encode_s"],
                    r["docs_per_s"],
                    r["compressor_s"],
                    f"{100 * r['compressor_share']:.1f}%",
                    f"{100 * r['added']:+.1f}%",
                    r["vectors_per_doc"],
                    {None: "", True: "yes", False: "no"}[r["target_met"]],
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows, target_added=TARGET_ADDED)


if __name__ == "__main__":
    main()
