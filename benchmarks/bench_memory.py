"""Peak resident memory of encoding + indexing NFCorpus documents, per compressor.

Runs one fresh Python process per compressor (so no allocation of one run is counted
in another) that builds the MiniLM ColBERT with that compressor (untrained
parameters), encodes the same NFCorpus documents and builds the default index
(``colcompress/conf/index/fastplaid.yaml``; the exact flat index for the ColBERT_P
rows, whose ReLU scoring fast-plaid cannot apply). Each child reports its peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) at the end and once the model is built
(imports and weights; ``encode + index`` is the growth after that), the index's bytes and the fp32
bytes of its vectors, per document::

    python benchmarks/bench_memory.py --docs 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from hydra.utils import instantiate

from benchmarks import common
from colcompress.evaluation.encode import encode
from colcompress.index import FlatIndex


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(label: str, n_docs: int, tiny: bool, seed: int) -> dict[str, float]:
    """Encode and index in this process; return its memory and size figures."""
    overrides = dict(common.COMPRESSORS)[label]
    base = common.TINY_MODEL if tiny else []
    ids, texts, _ = common.nfcorpus(n_docs, 0, seed)
    model = common.model([*base, *overrides], seed)
    after_model = peak_rss_mb()
    docs = encode(model, texts, False, 32).vectors
    with tempfile.TemporaryDirectory() as tmp:
        if model.relu:
            index = FlatIndex(relu=True)
        else:
            cfg = common.config([*base, *overrides, f"index.index_dir={Path(tmp) / 'index'}"])
            index = instantiate(cfg.index)()
        index.build(docs, ids)
        index_bytes = index.size_bytes()
    vectors = sum(d.shape[0] for d in docs)
    return {
        "compressor": label,
        "index": type(index).__name__,
        "peak_rss_mb": peak_rss_mb(),
        "model_rss_mb": after_model,
        "vectors_per_doc": vectors / n_docs,
        "index_bytes_per_doc": index_bytes / n_docs,
        "fp32_bytes_per_doc": vectors * model.dim * 4 / n_docs,
    }


def main(argv: list[str] | None = None) -> None:
    """Run one child process per compressor (or be that child), print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_memory")
    p.add_argument("--docs", type=int, default=256)
    p.add_argument("--only", nargs="*", default=None, help="compressor labels to run")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n_docs = 8 if args.tiny else args.docs
    if args.child is not None:
        print(json.dumps(child(args.child, n_docs, args.tiny, args.seed)))
        return
    labels = [label for label, _ in common.COMPRESSORS if args.only is None or label in args.only]
    env = common.environment(
        f"{n_docs} NFCorpus documents, {'tiny random' if args.tiny else 'MiniLM'} ColBERT, "
        "budget 32, one fresh process per compressor (encode + build the index)"
    )
    rows = []
    for label in labels:
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_memory",
            "--child",
            label,
            "--docs",
            str(n_docs),
        ]
        command += ["--seed", str(args.seed)] + (["--tiny"] if args.tiny else [])
        done = subprocess.run(command, capture_output=True, text=True, cwd=common.ROOT)
        if done.returncode != 0:
            raise SystemExit(f"bench_memory child {label!r} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"# done: {label}", flush=True)
    none = rows[0]["peak_rss_mb"] - rows[0]["model_rss_mb"] if labels[0] == "none" else None
    for row in rows:
        row["encode_index_mb"] = row["peak_rss_mb"] - row["model_rss_mb"]
        row["encode_index_x_none"] = row["encode_index_mb"] / none if none else None
    print(
        common.markdown_table(
            [
                "compressor",
                "index",
                "peak RSS MB",
                "after model MB",
                "encode + index MB",
                "x none",
                "vectors/doc",
                "index KB/doc",
                "fp32 KB/doc",
            ],
            [
                [
                    r["compressor"],
                    r["index"],
                    r["peak_rss_mb"],
                    r["model_rss_mb"],
                    r["encode_index_mb"],
                    r["encode_index_x_none"],
                    r["vectors_per_doc"],
                    r["index_bytes_per_doc"] / 1e3,
                    r["fp32_bytes_per_doc"] / 1e3,
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows)


if __name__ == "__main__":
    main()
