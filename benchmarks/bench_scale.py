"""Peak memory and time of evaluation with the corpus in memory and in chunks on disk.

One fresh process per configuration (so no allocation of one is counted in another)
runs colcompress's evaluation pass, ``evaluate_model``: encode the corpus, build the
default index (``colcompress/conf/index/fastplaid.yaml``), encode the queries,
search, score, and the utilization analysis, once with every vector in memory and
once with ``chunk_docs`` (``evaluation.chunk_docs``: the corpus goes to a float16
vector store on disk chunk by chunk, the index is built from it). Two corpora, each
with the NFCorpus test queries and qrels:

- NFCorpus (3,633 documents);
- ``--scale`` times as many documents: NFCorpus, SciFact's 5,183 documents
  (``scifact/<id>``) and copies of both with distinct ids (``copy<k>/<id>``). The
  copies of relevant documents count as not relevant, so its nDCG is lower.

Documents are cut to ``--doc-length`` tokens (at the model's 300, encoding runs at
about 14 documents/s on 2 CPU cores); the encoder is MiniLM with an untrained projection,
``compressor=none``. Each child reports its peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) once the corpus is loaded, the model
built and ranx's kernels loaded ("loaded"), when the index build starts (the corpus
encoded), when it ends, and at the end of the pass (the growth over "loaded":
"+ encode", "+ index", "+ all", each a high-water mark so far), and the pass's
timings; the table gives the chunked run's ratios to the in-memory run of the same
corpus::

    python benchmarks/bench_scale.py --doc-length 16 --scale 5 --chunk-docs 1024
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from benchmarks import common
from colcompress.data.beir import BeirData, Doc, load_beir, slice_beir
from colcompress.evaluation.evaluator import evaluate_model
from colcompress.evaluation.metrics import compute_metrics
from colcompress.evaluation.utilization_analysis import UtilizationAnalysis
from colcompress.index import Index

MODES = ("in memory", "chunked")


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus(scale: int, tiny: bool, seed: int) -> BeirData:
    """NFCorpus test (a slice with ``tiny``), its corpus grown ``scale`` times.

    Parameters
    ----------
    scale : int
        1 keeps NFCorpus; otherwise SciFact's documents and copies of both collections
        are added until the corpus holds ``scale`` times NFCorpus's documents.
    tiny : bool
        Start from 8 queries and 40 documents of NFCorpus (and SciFact).
    seed : int
        Seed of the tiny slices.
    """
    nf = load_beir(common.DATA_DIR / "nfcorpus", "test")
    if tiny:
        nf = slice_beir(nf, max_queries=8, max_docs=40, seed=seed)
    if scale == 1:
        return nf
    scifact = load_beir(common.DATA_DIR / "scifact", "test")
    if tiny:
        scifact = slice_beir(scifact, max_queries=0, max_docs=40, seed=seed)
    extra = [(f"scifact/{d}", doc) for d, doc in scifact.corpus.items()]
    pool = [*nf.corpus.items(), *extra]

    def more() -> Iterator[tuple[str, Doc]]:
        yield from extra
        for k in itertools.count(1):
            yield from ((f"copy{k}/{d}", doc) for d, doc in pool)

    docs = dict(nf.corpus)
    docs.update(itertools.islice(more(), scale * len(nf.corpus) - len(docs)))
    return BeirData(docs, nf.queries, nf.qrels, f"nfcorpus x{scale}", nf.split)


def watch(index: Index, peaks: dict[str, float]) -> None:
    """Record the peak resident set when the index's build starts (``encoded``: the
    corpus is encoded) and when it ends (``indexed``)."""
    for name in ("build", "build_from_store"):
        method = getattr(index, name)

        def recorded(*args: Any, _method: Callable[..., None] = method) -> None:
            peaks["encoded"] = peak_rss_mb()
            _method(*args)
            peaks["indexed"] = peak_rss_mb()

        setattr(index, name, recorded)


def child(scale: int, chunked: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Run one evaluation pass in this process; return its memory and time figures."""
    base = common.TINY_MODEL if args.tiny else []
    data = corpus(scale, args.tiny, args.seed)
    overrides = [*base, "compressor=none", f"model.doc_length={args.doc_length}"]
    model = common.model(overrides, args.seed)
    compute_metrics({"q": {"d": 1}}, {"q": {"d": 1.0}}, ["ndcg@10"])  # ranx's kernels loaded
    loaded = peak_rss_mb()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        index = instantiate(common.config([*overrides, f"index.index_dir={tmp}/index"]).index)()
        peaks: dict[str, float] = {}
        watch(index, peaks)
        start = time.perf_counter()
        out = evaluate_model(
            model,
            data,
            index,
            top_k=100,
            batch_size=32,
            metrics=["ndcg@10"],
            output_dir=Path(tmp),
            analyses=[UtilizationAnalysis(similarity_sample=1000)],
            chunk_docs=args.chunk_docs if chunked else None,
        )
        total = time.perf_counter() - start
    assert out is not None
    timings = out["timings"]
    return {
        "corpus": data.name,
        "mode": MODES[chunked],
        "chunk_docs": args.chunk_docs if chunked else None,
        "docs": out["index"]["num_docs"],
        "vectors": out["index"]["num_vectors"],
        "peak_rss_mb": peak_rss_mb(),
        "loaded_rss_mb": loaded,
        "encode_mb": peaks["encoded"] - loaded,
        "index_mb": peaks["indexed"] - loaded,
        "evaluation_mb": peak_rss_mb() - loaded,
        "encode_s": timings["encode_corpus_s"],
        "build_s": timings["index_build_s"],
        "search_s": timings["search_s"],
        "total_s": total,
        "ndcg@10": out["metrics"]["ndcg@10"],
        "index_bytes": out["index"]["index_bytes"],
    }


def main(argv: list[str] | None = None) -> None:
    """Run one child process per corpus and mode (or be that child), print and save."""
    p = common.parser(__doc__.splitlines()[0], "bench_scale")
    p.add_argument("--doc-length", type=int, default=16, help="tokens per document")
    p.add_argument("--scale", type=int, default=5, help="the larger corpus, x NFCorpus")
    p.add_argument("--chunk-docs", type=int, default=1024, help="documents per chunk")
    p.add_argument("--workdir", type=Path, default=None, help="where stores and indexes go")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.scale, args.chunk_docs = 3, 16
    if args.child is not None:
        scale, mode = args.child.split(":")
        print(json.dumps(child(int(scale), mode == "chunked", args)))
        return
    env = common.environment(
        f"NFCorpus test queries over NFCorpus{' (8 queries, 40 documents)' if args.tiny else ''} "
        f"and a corpus {args.scale}x its size (NFCorpus + SciFact + copies); documents cut to "
        f"{args.doc_length} tokens; {'tiny random' if args.tiny else 'MiniLM'} ColBERT, "
        f"compressor none, FastPlaid; in memory vs chunk_docs={args.chunk_docs}; one fresh "
        "process per row (evaluate_model: encode, index, search, score, utilization)"
    )
    rows = []
    for scale in (1, args.scale):
        for mode in ("memory", "chunked"):
            command = [sys.executable, "-m", "benchmarks.bench_scale", "--child", f"{scale}:{mode}"]
            command += ["--doc-length", str(args.doc_length), "--chunk-docs", str(args.chunk_docs)]
            command += ["--seed", str(args.seed)] + (["--tiny"] if args.tiny else [])
            if args.workdir is not None:
                command += ["--workdir", str(args.workdir)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT)
            if done.returncode != 0:
                raise SystemExit(f"bench_scale child {scale}:{mode} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"# done: x{scale} {mode}", flush=True)
    for memory, chunked in zip(rows[::2], rows[1::2], strict=True):
        for row in (memory, chunked):
            row["evaluation_x_memory"] = row["evaluation_mb"] / memory["evaluation_mb"]
            row["total_x_memory"] = row["total_s"] / memory["total_s"]
    print(
        common.markdown_table(
            [
                "corpus",
                "docs",
                "vectors",
                "mode",
                "peak RSS MB",
                "loaded MB",
                "+ encode MB",
                "+ index MB",
                "+ all MB",
                "x in memory",
                "encode s",
                "index s",
                "search s",
                "total s",
                "x in memory",
                "nDCG@10",
            ],
            [
                [
                    r["corpus"],
                    r["docs"],
                    r["vectors"],
                    r["mode"] + (f" ({r['chunk_docs']})" if r["chunk_docs"] else ""),
                    r["peak_rss_mb"],
                    r["loaded_rss_mb"],
                    r["encode_mb"],
                    r["index_mb"],
                    r["evaluation_mb"],
                    r["evaluation_x_memory"],
                    r["encode_s"],
                    r["build_s"],
                    r["search_s"],
                    r["total_s"],
                    r["total_x_memory"],
                    r["ndcg@10"],
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows)


if __name__ == "__main__":
    main()
