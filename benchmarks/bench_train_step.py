"""A Lightning training step of colcompress against a bare PyTorch loop doing the same work.

Both train copies of the same MiniLM ColBERT (3 bottom layers frozen, as
``colcompress/conf/training/default.yaml``) on the same NFCorpus batches (queries, their
first relevant document and one random document, documents cut at 180 tokens):
:class:`~colcompress.training.module.RetrievalModule` under ``lightning.Trainer``
(CPU, fp32, gradient clipping 1.0 as ``colcompress/conf/trainer/cpu.yaml``; no logger,
checkpoint or progress bar), and a hand-written loop with the same forward, contrastive loss,
backward, clipping and AdamW step. A step is the wall time between the starts of
consecutive steps (data, forward, backward, optimiser, framework hooks); the median of
the timed steps is kept, best of interleaved rounds::

    python benchmarks/bench_train_step.py --batch 8 --steps 6 --rounds 2
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from typing import Any

import lightning as L
import torch

from benchmarks import common
from colcompress.data.beir import load_beir
from colcompress.models.colbert import ColBERT
from colcompress.training.collate import TrainBatch
from colcompress.training.losses import contrastive_loss
from colcompress.training.module import RetrievalModule

TARGET_OVERHEAD = 0.10
FREEZE_LAYERS = 3
DOC_LENGTH = 180


def batches(model: ColBERT, n: int, size: int, seed: int) -> list[TrainBatch]:
    """``n`` batches of ``size`` NFCorpus train queries, each with a positive and a random doc."""
    data = load_beir(common.DATA_DIR / "nfcorpus", "train")
    rng = random.Random(seed)
    qids = rng.sample(sorted(data.qrels), n * size)
    doc_ids = sorted(data.corpus)
    out = []
    for b in range(n):
        chosen = qids[b * size : (b + 1) * size]
        docs = []
        for q in chosen:
            positive = sorted(d for d, grade in data.qrels[q].items() if grade > 0)[0]
            docs += [data.corpus[positive].full_text, data.corpus[rng.choice(doc_ids)].full_text]
        out.append(
            TrainBatch(
                model.tokenize_queries([data.queries[q] for q in chosen]),
                model.tokenize_documents(docs, DOC_LENGTH),
                group_size=2,
            )
        )
    return out


class StepClock(L.Callback):
    """Records the start time of every training step."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args: Any) -> None:
        self.starts.append(time.perf_counter())


def lightning_steps(
    model: ColBERT, data: list[TrainBatch], warmup: int, freeze: int
) -> list[float]:
    """Seconds of each step after ``warmup`` under ``lightning.Trainer``."""
    module = RetrievalModule(copy.deepcopy(model), freeze_layers=freeze)
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=len(data),
        precision="32-true",
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[clock],
    )
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)
    trainer.fit(module, loader)
    times = [b - a for a, b in zip(clock.starts, clock.starts[1:])]
    return times[warmup:]


def bare_steps(model: ColBERT, data: list[TrainBatch], warmup: int, freeze: int) -> list[float]:
    """Seconds of each step after ``warmup`` of a plain PyTorch loop doing the same work."""
    module = RetrievalModule(copy.deepcopy(model), freeze_layers=freeze)
    net = module.model.train()
    backbone = {id(p) for p in net.encoder.parameters()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in trainable if id(p) in backbone]},
            {"params": [p for p in trainable if id(p) not in backbone]},
        ],
        lr=module.lr,
        weight_decay=module.weight_decay,
    )
    starts = []
    for batch in data:
        starts.append(time.perf_counter())
        queries = net.encode_queries(batch.queries)
        docs = net.encode_documents(batch.docs)
        loss = contrastive_loss(net.score(queries, docs), batch.group_size, module.temperature)
        for term in net.compressor.regularization(docs).values():
            loss = loss + term
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
    starts.append(time.perf_counter())
    times = [b - a for a, b in zip(starts, starts[1:])]
    return times[warmup:]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train both ways in interleaved rounds, print and save the table."""
    p = common.parser(__doc__.splitlines()[0], "bench_train_step")
    p.add_argument("--batch", type=int, default=8, help="queries per batch (2 documents each)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps per run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved runs of each (best kept)")
    p.add_argument("--compressor", default="none")
    args = p.parse_args(argv)
    batch, steps = (2, 2) if args.tiny else (args.batch, args.steps)
    base = common.TINY_MODEL if args.tiny else []
    freeze = 1 if args.tiny else FREEZE_LAYERS  # the tiny model has 2 layers
    model = common.model([*base, f"compressor={args.compressor}"], args.seed).train()
    data = batches(model, steps + args.warmup, batch, args.seed)
    env = common.environment(
        f"{batch} NFCorpus train queries x (1 positive + 1 random document, {DOC_LENGTH} "
        f"tokens) per step, {'tiny random' if args.tiny else 'MiniLM'} ColBERT, "
        f"compressor={args.compressor}, {freeze} layers frozen, median of {steps} "
        f"steps after {args.warmup}, best of {args.rounds} interleaved rounds"
    )
    medians: dict[str, list[float]] = {"bare PyTorch loop": [], "lightning.Trainer": []}
    for _ in range(args.rounds):
        medians["bare PyTorch loop"].append(
            statistics.median(bare_steps(model, data, args.warmup, freeze))
        )
        medians["lightning.Trainer"].append(
            statistics.median(lightning_steps(model, data, args.warmup, freeze))
        )
    bare = min(medians["bare PyTorch loop"])
    rows = [
        {
            "loop": name,
            "step_s": min(values),
            "rounds_s": values,
            "overhead_vs_bare": min(values) / bare - 1,
        }
        for name, values in medians.items()
    ]
    rows[-1]["target_met"] = rows[-1]["overhead_vs_bare"] <= TARGET_OVERHEAD
    print(
        common.markdown_table(
            ["training loop", "s/step (median, best round)", "each round", "overhead vs bare"],
            [
                [
                    r["loop"],
                    r["step_s"],
                    ", ".join(f"{v:.3f}" for v in r["rounds_s"]),
                    f"{100 * r['overhead_vs_bare']:+.1f}%",
                ]
                for r in rows
            ],
        )
    )
    common.write_json(args.out, env, rows, target_overhead=TARGET_OVERHEAD)


if __name__ == "__main__":
    main()
