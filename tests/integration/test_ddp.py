"""2-process gloo DDP on CPU: gathered in-batch negatives equal one process on the whole batch."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

from colcompress.models.scoring import maxsim
from colcompress.training.distributed import gather_padded, gather_with_grad, widen_local_columns
from colcompress.training.losses import contrastive_loss

WORLD = 2
B, G, LQ, VOCAB, DIM = 3, 2, 5, 40, 8
DOC_LENGTHS = (4, 7)  # documents of rank 0 are shorter than rank 1's: padding across ranks
STEPS = 3
TEMPERATURE = 0.5


class TinyEncoder(nn.Module):
    """Token embedding + projection, L2-normalised: a stand-in for the ColBERT encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.proj = nn.Linear(16, DIM)

    def forward(self, ids: Tensor) -> Tensor:
        return F.normalize(self.proj(torch.tanh(self.embed(ids))), dim=-1)


def _data(step: int) -> list[dict[str, Tensor]]:
    """Each rank's batch at ``step``: B queries, B*G documents of rank-specific length."""
    gen = torch.Generator().manual_seed(100 + step)
    out = []
    for length in DOC_LENGTHS:
        doc_mask = torch.arange(length) < torch.randint(1, length + 1, (B * G, 1), generator=gen)
        exclude = torch.zeros(B, B * G, dtype=torch.bool)
        exclude[0, G] = True  # a known false negative of query 0 in the local block
        out.append(
            {
                "queries": torch.randint(0, VOCAB, (B, LQ), generator=gen),
                "docs": torch.randint(0, VOCAB, (B * G, length), generator=gen),
                "doc_mask": doc_mask,
                "exclude": exclude,
            }
        )
    return out


def _local_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """The training step as module.py would do it under DDP (identity on 1 process)."""
    queries = model(batch["queries"])
    docs = gather_padded(model(batch["docs"]), batch["doc_mask"])
    scores = maxsim(
        queries, torch.ones(queries.shape[:2], dtype=torch.bool), docs.vectors, docs.mask
    )
    exclude = widen_local_columns(batch["exclude"], docs.offset, scores.shape[1])
    # Roll the columns so this rank's block comes first: the positive of query b is
    # then column b * G as contrastive_loss expects (the softmax is order-invariant).
    return contrastive_loss(
        scores.roll(-docs.offset, 1), G, TEMPERATURE, exclude.roll(-docs.offset, 1)
    )


def _concatenated(step: int) -> dict[str, Tensor]:
    """The whole batch of all ranks for one process (docs padded to the longest)."""
    parts = _data(step)
    longest = max(DOC_LENGTHS)
    exclude = torch.zeros(WORLD * B, WORLD * B * G, dtype=torch.bool)
    for r, p in enumerate(parts):
        exclude[r * B : (r + 1) * B, r * B * G : (r + 1) * B * G] = p["exclude"]
    return {
        "queries": torch.cat([p["queries"] for p in parts]),
        "docs": torch.cat([F.pad(p["docs"], (0, longest - p["docs"].shape[1])) for p in parts]),
        "doc_mask": torch.cat(
            [F.pad(p["doc_mask"], (0, longest - p["doc_mask"].shape[1])) for p in parts]
        ),
        "exclude": exclude,
    }


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(TinyEncoder())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        losses, grads = [], []
        for step in range(STEPS):
            optimizer.zero_grad()
            loss = _local_loss(model, _data(step)[rank])
            loss.backward()  # DDP averages the parameter gradients over ranks
            grads.append({n: p.grad.clone() for n, p in model.module.named_parameters()})
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(mean / WORLD)
            optimizer.step()
        # variable row counts: rank r contributes r + 1 rows; every rank sums all rows,
        # so each local row's gradient is WORLD (one unit from each rank's loss)
        x = torch.full((rank + 1, 2), float(rank), requires_grad=True)
        gathered = gather_with_grad(x)
        gathered.sum().backward()
        if rank == 0:
            torch.save(
                {"losses": losses, "grads": grads, "gathered": gathered.detach(), "xgrad": x.grad},
                out,
            )
    finally:
        dist.destroy_process_group()


def test_gathered_negatives_match_single_process(tmp_path: Path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(out)), nprocs=WORLD, join=True)
    got = torch.load(out)

    torch.manual_seed(0)
    model = TinyEncoder()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = _local_loss(reference, _concatenated(step))  # one process: no gather
        loss.backward()
        assert got["losses"][step].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
        for name, param in reference.named_parameters():
            torch.testing.assert_close(got["grads"][step][name], param.grad, rtol=1e-5, atol=1e-6)
        optimizer.step()
    assert got["gathered"].tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert got["xgrad"].tolist() == [[float(WORLD)] * 2]


@pytest.mark.slow
@pytest.mark.data
def test_two_process_cpu_ddp_run_trains_shards_encoding_and_evaluates(tmp_path: Path):
    """The real entry point under Lightning DDP (gloo, 2 CPU processes): training steps
    with gathered negatives, the corpus encoded in two shards and indexed on rank 0."""
    from tests.integration.helpers import colcompress, load_results

    colcompress(
        tmp_path,
        "debug=default",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "trainer.max_steps=3",
        "index=flat",
        "logger=csv",
        "evaluation.baselines=[bm25]",
    )
    results = load_results(tmp_path)  # exactly one results.json: rank 0 wrote it
    assert results["timings"]["encode_ranks"] == 2
    assert all(0.0 <= v <= 1.0 for v in results["metrics"].values())
    assert "bm25" in results["baselines"]
    (last,) = (tmp_path / "logs").rglob("last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 3
    # one process evaluating the same weights gets the same index and metrics: the
    # shards were gathered back in corpus order
    single = tmp_path / "single"
    colcompress(
        single,
        "debug=default",
        "train=false",
        f"init_from={last}",
        "index=flat",
        "logger=none",
        "evaluation.baselines=[]",
    )
    alone = load_results(single)
    assert alone["timings"]["encode_ranks"] == 1
    assert alone["index"]["num_vectors"] == results["index"]["num_vectors"]
    assert alone["metrics"] == pytest.approx(results["metrics"], abs=1e-6)
