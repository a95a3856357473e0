"""H-Pool's scipy and torch backends against PyLate-style per-document Ward pooling.

Encodes NFCorpus documents once (MiniLM, every token vector kept), then pools them to
each budget three ways, side by side: the reference, a faithful re-implementation of
PyLate's ``pool_embeddings_hierarchical`` (per document: cosine similarities, ``1 -
sim`` handed to ``scipy.cluster.hierarchy.linkage(..., method="ward")`` as a square
matrix, ``fcluster(maxclust)``, a Python loop of cluster means, protected tokens
appended), with ``budget - protected`` clusters instead of ``n // pool_factor``; and
:class:`~colcompress.compressors.hpool.HPool` with ``backend="scipy"`` and
``backend="torch"`` on length-sorted padded batches. Reports documents/s, the ratio to
the reference and the share of documents whose partition is identical::

    python benchmarks/bench_hpool.py --docs 256 --budgets 5 32 128
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.cluster import hierarchy
from torch import Tensor

from benchmarks import common
from colcompress.compressors.hpool import HPool
from colcompress.models.states import TokenStates
from colcompress.padding import pad_stack

TARGET_SPEEDUP = 5.0


def pylate_pool(doc: Tensor, num_clusters: int, protected_tokens: int = 1) -> tuple[Tensor, Tensor]:
    """PyLate's hierarchical pooling of one document, with a cluster count.

    The steps of ``pylate.models.ColBERT.pool_embeddings_hierarchical``: the
    similarity matrix of the non-protected (unit) vectors, ``1 - sim`` given to
    scipy's Ward linkage as ``n`` observation rows, ``maxclust`` labels, the mean of
    each cluster in label order, then the protected vectors appended.

    Parameters
    ----------
    doc : Tensor[n, D]
        L2-normalised token vectors, protected tokens first.
    num_clusters : int
    protected_tokens : int

    Returns
    -------
    pooled : Tensor[m, D]
    labels : Tensor[n - protected_tokens]
        scipy's cluster label (1-based) of every pooled token.
    """
    protected = doc[:protected_tokens]
    to_pool = doc[protected_tokens:]
    distances = 1 - torch.mm(to_pool, to_pool.t()).cpu().numpy()
    with warnings.catch_warnings():  # scipy warns that this looks like a distance matrix
        warnings.simplefilter("ignore")
        tree = hierarchy.linkage(distances, method="ward")
    labels = hierarchy.fcluster(tree, t=num_clusters, criterion="maxclust")
    pooled = []
    for cluster_id in range(1, num_clusters + 1):
        members = torch.where(torch.tensor(labels == cluster_id, device=doc.device))[0]
        if members.numel() > 0:
            pooled.append(to_pool[members].mean(dim=0))
    pooled.extend(protected)
    return torch.stack(pooled), torch.from_numpy(labels)


def canonical(labels: np.ndarray) -> tuple[int, ...]:
    """Cluster labels renumbered by first occurrence (equal iff the partitions are)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return tuple(np.argsort(np.argsort(first))[inverse].tolist())


def hpool_labels(pool: HPool, batch: list[Tensor]) -> list[tuple[int, ...]]:
    """The partition HPool gives each document's non-protected tokens (canonical form)."""
    vectors, mask = pad_stack(batch)
    pooled = mask.clone()
    pooled[:, : pool.protected_tokens] = False
    labels = pool._labels(vectors, pooled, pool.num_clusters(pooled.sum(1), mask.sum(1)))
    return [canonical(row[m].numpy()) for row, m in zip(labels, pooled, strict=True)]


def run_hpool(pool: HPool, batches: list[list[Tensor]]) -> float:
    """Seconds to pool every batch with ``pool`` (on the vectors' device)."""
    start = time.perf_counter()
    for batch in batches:
        vectors, mask = pad_stack(batch)
        pool(vectors, TokenStates(vectors, mask, mask.long()))
    if batches[0][0].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def document_vectors(n_docs: int, tiny: bool, seed: int, saved: Path | None) -> list[Tensor]:
    """Every token vector of ``n_docs`` NFCorpus documents, from ``saved`` when it exists.

    Otherwise encodes them (MiniLM, or the tiny random model) and writes them to
    ``saved`` when given, so a machine without the training stack can reuse them.
    """
    if saved is not None and saved.exists():
        return torch.load(saved)
    from colcompress.evaluation.encode import encode

    base = common.TINY_MODEL if tiny else []
    _, texts, _ = common.nfcorpus(n_docs, 0, seed)
    docs = encode(common.model([*base, "compressor=none"], seed), texts, False, 32).vectors
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save(docs, saved)
    return docs


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, encode, pool at every budget three ways, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_hpool")
    p.add_argument("--docs", type=int, default=256)
    p.add_argument("--budgets", type=int, nargs="+", default=[5, 32, 128])
    p.add_argument("--batch-size", type=int, default=32, help="documents per HPool call")
    p.add_argument(
        "--vectors", type=Path, default=None, help="saved document vectors (written if missing)"
    )
    p.add_argument("--device", default="cpu", help="where vectors live (PyLate: cuda if any)")
    args = p.parse_args(argv)
    n_docs = 8 if args.tiny else args.docs
    docs = document_vectors(n_docs, args.tiny, args.seed, args.vectors)[:n_docs]
    n_docs = len(docs)
    docs = sorted((d.to(args.device) for d in docs), key=lambda d: -d.shape[0])
    batches = [docs[i : i + args.batch_size] for i in range(0, len(docs), args.batch_size)]
    tokens = sum(d.shape[0] for d in docs) / len(docs)
    env = common.environment(
        f"{n_docs} NFCorpus documents ({tokens:.0f} vectors each on average, "
        f"{'tiny random' if args.tiny else 'MiniLM'} encoder), budgets {args.budgets}, "
        f"HPool batches of {args.batch_size}, 1 protected token, device {args.device}"
    )
    rows = []
    for budget in args.budgets:
        clusters = budget - 1
        start = time.perf_counter()
        reference = [
            canonical(pylate_pool(d, min(clusters, d.shape[0] - 1))[1].numpy()) for d in docs
        ]
        ref_s = time.perf_counter() - start
        rows.append({"budget": budget, "method": "PyLate-style (per document)", "seconds": ref_s})
        partitions = {}
        for backend in ("scipy", "torch"):
            pool = HPool(budget=budget, backend=backend)
            run_hpool(pool, batches[:1])  # warm-up
            seconds = run_hpool(pool, batches)
            partitions[backend] = [lab for b in batches for lab in hpool_labels(pool, b)]
            rows.append(
                {"budget": budget, "method": f"hpool backend={backend}", "seconds": seconds}
            )
        same_backends = np.mean(
            [a == b for a, b in zip(partitions["scipy"], partitions["torch"], strict=True)]
        )
        same_reference = np.mean(
            [a == b for a, b in zip(partitions["scipy"], reference, strict=True)]
        )
        for row in rows[-3:]:
            row["docs_per_s"] = n_docs / row["seconds"]
            row["speedup_vs_reference"] = ref_s / row["seconds"]
            row["same_partition_scipy_torch"] = float(same_backends)
            row["same_partition_as_reference"] = float(same_reference)
        rows[-1]["target_met"] = rows[-1]["speedup_vs_reference"] >= TARGET_SPEEDUP
        print(f"# done: budget {budget}", flush=True)
    print(
        common.markdown_table(
            ["budget", "pooling", "s", "docs/s", "x reference", "identical partitions"],
            [
                [
                    r["budget"],
                    r["method"],
                    r["seconds"],
                    r["docs_per_s"],
                    r["speedup_vs_reference"],
                    ""
                    if r["method"].startswith("PyLate")
                    else f"scipy=torch {100 * r['same_partition_scipy_torch']:.0f}%, "
                    f"=PyLate {100 * r['same_partition_as_reference']:.0f}%",
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows, target_speedup=TARGET_SPEEDUP)


if __name__ == "__main__":
    main()
