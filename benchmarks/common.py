"""Helpers shared by the benchmark scripts: data, models, timing, tables and JSON output.

Every script prints :func:`environment` as its header (the load average included: the
machines are shared, so timings are only compared within one run), a markdown table
made by :func:`markdown_table`, and writes its rows with :func:`write_json` to
``--out`` (default ``benchmarks/results/<script>.json``, git-ignored: the tables with
their commands in docs/benchmarks.md are the record, the JSON is one machine's raw
output).

The training stack (Hydra, transformers, the model) is imported only by
:func:`config` and :func:`model`, so a script that only times compressors on saved
vectors (``bench_hpool.py --vectors``) runs where only torch and scipy are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from colcompress.atomic import write_text_atomic
from colcompress.data.beir import load_beir

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from colcompress.models.colbert import ColBERT

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "colcompress" / "conf"
T = TypeVar("T")

RESULTS = ROOT / "benchmarks" / "results"
DATA_DIR = Path(os.environ.get("COLCOMPRESS_DATA_DIR", ROOT.parent / "shared" / "data" / "beir"))
# The tiny random BERT of colcompress/conf/model/tiny.yaml (2 layers, hidden 32): for smoke runs.
TINY_MODEL = ["model=tiny"]
# ColBERT_P, which the lossless compressors need (clipped norms, ReLU MaxSim).
COLBERT_P = ["model.normalize=clip", "model.scoring=maxsim_relu"]
# Every compressor the benchmarks compare, as (label, Hydra overrides)
COMPRESSORS: list[tuple[str, list[str]]] = [
    ("none", ["compressor=none"]),
    ("hpool (scipy)", ["compressor=hpool", "compressor.backend=scipy"]),
    ("hpool (torch)", ["compressor=hpool", "compressor.backend=torch"]),
    ("agc", ["compressor=agc"]),
    ("memtok", ["compressor=memtok"]),
    ("seqresize", ["compressor=seqresize"]),
    ("crisp", ["compressor=crisp"]),
    ("lossless norm", ["compressor=lossless_norm", *COLBERT_P]),
    ("lossless LP", ["compressor=lossless_lp", *COLBERT_P]),  # exact; lp_svd: bench_lossless
]


def parser(description: str, script: str) -> argparse.ArgumentParser:
    """Argument parser with the options every benchmark has.

    Parameters
    ----------
    description : str
        The script's one-line summary.
    script : str
        The script's name, used for the default ``--out``.

    Returns
    -------
    argparse.ArgumentParser
        With ``--out`` (JSON path), ``--tiny`` (smoke size, tiny random model) and
        ``--seed``.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=RESULTS / f"{script}.json", help="JSON output")
    p.add_argument(
        "--tiny", action="store_true", help="smoke size: a few documents, tiny random model"
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def environment(what: str) -> dict[str, Any]:
    """The machine and load of this run, printed as the table's header line.

    Parameters
    ----------
    what : str
        What was measured (sizes), put first in the printed line.

    Returns
    -------
    dict
        ``what``, torch version, threads, machine, CPUs, 1-minute load average.
    """
    env = {
        "what": what,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(
        f"# {what}; torch {env['torch']} ({env['threads']} threads), {env['machine']}, "
        f"{env['cpus']} CPUs, load average {env['load_average']:.1f}",
        flush=True,
    )
    return env


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats are printed with 3 significant decimals at most.

    Parameters
    ----------
    headers : sequence of str
        Column names; the first column is left-aligned, the others right-aligned.
    rows : sequence of sequences
        One value per column (None prints empty).
    """

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = [
        "| " + " | ".join(headers) + " |",
        "|---|" + "---:|" * (len(headers) - 1),
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, env: dict[str, Any], rows: list[dict[str, Any]], **extra: Any) -> None:
    """Write ``{"environment": env, "rows": rows, **extra}`` to ``path`` atomically."""
    payload = {"environment": env, "rows": rows, **extra}
    write_text_atomic(json.dumps(payload, indent=2) + "\n", path)
    print(f"# wrote {path}", flush=True)


def nfcorpus(
    n_docs: int | None, n_queries: int | None = None, seed: int = 0, split: str = "test"
) -> tuple[list[str], list[str], list[str]]:
    """A seeded random sample of NFCorpus documents and test queries.

    Parameters
    ----------
    n_docs, n_queries : int or None
        Sample sizes; None keeps all (3,633 documents, 323 test queries).
    seed : int
    split : str

    Returns
    -------
    doc_ids : list of str
    doc_texts : list of str
        Title and body, as the encoder sees them.
    queries : list of str
    """
    data = load_beir(DATA_DIR / "nfcorpus", split)
    rng = random.Random(seed)
    ids = sorted(data.corpus)
    if n_docs is not None and n_docs < len(ids):
        ids = sorted(rng.sample(ids, n_docs))
    qids = sorted(data.queries)
    if n_queries is not None and n_queries < len(qids):
        qids = sorted(rng.sample(qids, n_queries))
    return ids, [data.corpus[i].full_text for i in ids], [data.queries[q] for q in qids]


def config(overrides: Sequence[str]) -> DictConfig:
    """The project's Hydra config composed with ``overrides`` (e.g. ``compressor=agc``)."""
    from hydra import compose, initialize_config_dir

    import colcompress.resolvers  # noqa: F401  (the resolvers the configs use)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def model(
    overrides: Sequence[str], seed: int = 0, fit_texts: Sequence[str] | None = None
) -> ColBERT:
    """A ColBERT built from the project's config, in eval mode.

    The backbone is the pretrained MiniLM (or the tiny random one with
    ``model=tiny``); compressor parameters are freshly initialised (untrained), and
    the projection is initialised from ``seed`` after the compressor, so every model
    built with the same seed and model overrides has the same encoder and projection.

    Parameters
    ----------
    overrides : sequence of str
        Hydra overrides, e.g. ``["compressor=hpool", "budget=32"]``.
    seed : int
    fit_texts : sequence of str or None
        Documents to initialise the projection from, as training does
        (:meth:`ColBERT.fit_projection`, ``training.projection_init=svd``); None keeps
        the random projection.
    """
    from omegaconf import OmegaConf
    from transformers.utils import logging as hf_logging

    from colcompress.job import build_model

    hf_logging.disable_progress_bar()  # "Loading weights" bars on every model build
    cfg = config(overrides)
    torch.manual_seed(seed)
    built = build_model(
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.compressor, resolve=True),
    )
    torch.manual_seed(seed)
    built.projection.reset_parameters()
    if fit_texts is not None:
        built.fit_projection(list(fit_texts))
    return built.eval()


def best_seconds(fn: Callable[[], T], repeats: int, warmup: bool = True) -> tuple[float, T]:
    """Best wall time of ``repeats`` calls of ``fn`` (after a warm-up call) and the last result."""
    result = fn() if warmup else None
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]


class Matmul:
    """A large fp32 matrix product: the machine's practical ceiling for dense fp32 work.

    :meth:`seconds_for` runs as many ``[size, size] @ [size, size]`` products as match
    a workload's FLOPs, so the ceiling can be measured right next to each slice of the
    workload, for as long, under the same load.
    """

    def __init__(self, size: int = 1024) -> None:
        gen = torch.Generator().manual_seed(0)
        self.a = torch.randn(size, size, generator=gen)
        self.b = torch.randn(size, size, generator=gen)
        self.flops = 2.0 * size**3
        self.a @ self.b  # warm-up

    def seconds_for(self, flops: float) -> tuple[float, float]:
        """Seconds and FLOPs of ``max(1, round(flops / product))`` products."""
        count = max(1, round(flops / self.flops))
        start = time.perf_counter()
        for _ in range(count):
            self.a @ self.b
        return time.perf_counter() - start, count * self.flops
