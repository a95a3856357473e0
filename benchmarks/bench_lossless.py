"""Lossless dominance pruning: documents/s of the exact LP and the SVD-reduced LP.

Encodes NFCorpus documents once with the ColBERT_P MiniLM model (``normalize=clip``,
``scoring=maxsim_relu``, projection initialised from the documents' SVD as training
starts; no training, so few vectors are short and the LP has the most to decide),
then prunes the same vectors with
:class:`~colcompress.compressors.lossless.LosslessPruning` per strategy and worker
count, side by side. Extrapolates the whole NFCorpus corpus (3,633 documents) from
the measured rate::

    python benchmarks/bench_lossless.py --docs 128 --workers 1 2
"""

from __future__ import annotations

import time

from torch import Tensor

from benchmarks import common
from colcompress.compressors.lossless import LosslessPruning
from colcompress.evaluation.encode import encode
from colcompress.models.states import TokenStates
from colcompress.padding import pad_stack

NFCORPUS_DOCS = 3633
TARGET_SECONDS = 120.0


def prune(compressor: LosslessPruning, docs: list[Tensor], batch_size: int) -> float:
    """Seconds to prune ``docs`` in batches of ``batch_size``."""
    compressor.reset_counts()
    start = time.perf_counter()
    for i in range(0, len(docs), batch_size):
        vectors, mask = pad_stack(docs[i : i + batch_size])
        compressor(vectors, TokenStates(vectors, mask, mask.long()))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, encode, prune with each setting, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_lossless")
    p.add_argument("--docs", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    n_docs = 8 if args.tiny else args.docs
    base = common.TINY_MODEL if args.tiny else []
    _, texts, _ = common.nfcorpus(n_docs, 0, args.seed)
    model = common.model(
        [*base, *common.COLBERT_P, "compressor=none"], args.seed, fit_texts=texts[:64]
    )
    docs = encode(model, texts, False, args.batch_size).vectors
    vectors = sum(d.shape[0] for d in docs)
    env = common.environment(
        f"{n_docs} NFCorpus documents ({vectors} vectors, D={model.dim}), "
        f"{'tiny random' if args.tiny else 'MiniLM'} ColBERT_P, untrained (SVD-initialised "
        f"projection), batches of {args.batch_size}; whole corpus = {NFCORPUS_DOCS} documents "
        "extrapolated"
    )
    rows = []
    for strategy in ("lp", "lp_svd"):
        for workers in args.workers:
            compressor = LosslessPruning(strategy=strategy, posthoc=True, workers=workers).eval()
            prune(compressor, docs[:2], args.batch_size)  # warm-up (starts the worker pool)
            seconds = prune(compressor, docs, args.batch_size)
            corpus_s = seconds / n_docs * NFCORPUS_DOCS
            rows.append(
                {
                    "strategy": strategy,
                    "workers": workers,
                    "seconds": seconds,
                    "docs_per_s": n_docs / seconds,
                    "pruned": compressor.prune_ratio,
                    "nfcorpus_s_extrapolated": corpus_s,
                    "target_met": corpus_s <= TARGET_SECONDS,
                }
            )
            print(f"# done: {strategy}, {workers} workers", flush=True)
    print(
        common.markdown_table(
            ["strategy", "workers", "s", "docs/s", "vectors pruned", "NFCorpus s (extrapolated)"],
            [
                [
                    r["strategy"],
                    r["workers"],
                    r["seconds"],
                    r["docs_per_s"],
                    f"{100 * r['pruned']:.1f}%",
                    r["nfcorpus_s_extrapolated"],
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows, target_seconds=TARGET_SECONDS)


if __name__ == "__main__":
    main()
