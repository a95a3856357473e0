"""FastPlaid search and build settings side by side on a finished run's real index.

Reopens the FastPlaid index of a run directory, encodes the run's evaluation queries
with its checkpoint, and searches once per ``(n_full_scores, n_ivf_probe)`` setting,
plus the exact flat index over the same (pre-quantisation) document vectors. With
``--partition-factors`` it also rebuilds the index from those vectors once per factor
(k-means centroids = 2^floor(log2(factor * sqrt(#vectors)))) and searches each with
the first setting. Prints build time, latency, nDCG@10 and Recall@100 with ratios to
the first row::

    python benchmarks/bench_search_settings.py logs/train/runs/<run> \\
        --settings 4096:8 1024:8 1024:4 512:4 --partition-factors 4 2 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from colcompress.checkpoint import load_model_weights, model_config
from colcompress.evaluation.encode import encode
from colcompress.evaluation.metrics import compute_metrics
from colcompress.index import FastPlaidIndex, FlatIndex, Index
from colcompress.index.fastplaid import num_partitions
from colcompress.job import build_model


def _checkpoint(run_dir: Path) -> Path:
    found = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    if not found:
        raise SystemExit(f"{run_dir}/checkpoints holds no checkpoint")
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if last in found else found[-1]


def _timed_search(
    index: Index, queries: list[torch.Tensor], qids: list[str], k: int
) -> tuple[float, dict[str, dict[str, float]]]:
    """Seconds of one search pass after a warm-up, and its run."""
    index.search(queries[:4], k)  # warm-up
    start = time.perf_counter()
    found = index.search(queries, k)
    return time.perf_counter() - start, found.as_run(qids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory with results.json")
    parser.add_argument("--settings", nargs="+", default=["4096:8", "1024:8", "1024:4", "512:4"])
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument(
        "--partition-factors",
        nargs="*",
        type=float,
        default=[],
        help="rebuild the index once per factor (centroid count) and search it",
    )
    args = parser.parse_args()
    results = json.loads((args.run_dir / "results.json").read_text())
    cfg = results["config"]
    ckpt = _checkpoint(args.run_dir)
    stored = model_config(ckpt)
    model = load_model_weights(build_model(stored["model"], stored["compressor"]), ckpt)
    dataset = cfg["dataset"]
    datamodule = instantiate(dataset)  # the run's own split and slice
    datamodule.prepare_data()
    datamodule.setup("fit")
    data = datamodule.eval_data
    qids = list(data.queries)
    queries = encode(model, [data.queries[q] for q in qids], True, 32).vectors
    metrics = ["ndcg@10", "recall@100"]
    rows = []
    for setting in args.settings:
        n_full, probe = (int(x) for x in setting.split(":"))
        index = FastPlaidIndex.load(args.run_dir / "index", n_full_scores=n_full, n_ivf_probe=probe)
        seconds, run = _timed_search(index, queries, qids, args.top_k)
        rows.append(
            (
                f"fast-plaid {n_full}:{probe}",
                None,
                seconds,
                compute_metrics(data.qrels, run, metrics),
            )
        )
    doc_ids = list(data.corpus)
    docs = encode(model, [data.corpus[d].full_text for d in doc_ids], False, 32).vectors
    flat = FlatIndex()
    flat.build(docs, doc_ids)
    seconds, run = _timed_search(flat, queries, qids, args.top_k)
    rows.append(("flat (exact, fp32)", None, seconds, compute_metrics(data.qrels, run, metrics)))
    n_full, probe = (int(x) for x in args.settings[0].split(":"))
    for factor in args.partition_factors:
        with tempfile.TemporaryDirectory(dir=args.run_dir) as tmp:
            index = FastPlaidIndex(
                Path(tmp) / "index",
                n_full_scores=n_full,
                n_ivf_probe=probe,
                partition_factor=factor,
            )
            start = time.perf_counter()
            index.build(docs, doc_ids)
            build_s = time.perf_counter() - start
            seconds, run = _timed_search(index, queries, qids, args.top_k)
        centroids = num_partitions(sum(d.shape[0] for d in docs), factor)
        rows.append(
            (
                f"fast-plaid {n_full}:{probe}, factor {factor:g} ({centroids} centroids)",
                build_s,
                seconds,
                compute_metrics(data.qrels, run, metrics),
            )
        )
    print(
        f"# {args.run_dir} ({results['method']}, {dataset['name']} {dataset['eval_split']}, "
        f"{len(qids)} queries, k={args.top_k}); torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "\n| index (n_full_scores:n_ivf_probe) | build s | ms/query | ndcg@10 | recall@100 "
        "| search x first |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    first = rows[0][2]
    for name, build_s, seconds, m in rows:
        ms = 1000 * seconds / len(qids)
        quality = f"{m['ndcg@10']:.4f} | {m['recall@100']:.4f}"
        build = "" if build_s is None else f"{build_s:.0f}"
        print(f"| {name} | {build} | {ms:.0f} | {quality} | {seconds / first:.2f} |")


if __name__ == "__main__":
    main()
