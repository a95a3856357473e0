"""Utilization analytics: evenness measures, streaming statistics, the evaluator hook, plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from colcompress.evaluation import plots
from colcompress.evaluation.utilization import (
    UtilizationAccumulator,
    UtilizationStats,
    coefficient_of_variation,
    gini,
    utilization_from_vectors,
)
from colcompress.evaluation.utilization_analysis import UtilizationAnalysis
from colcompress.index.store import VectorStoreWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- CV, Gini


def test_cv_and_gini_uniform_are_zero():
    assert coefficient_of_variation([3.0] * 7) == 0.0
    assert gini([3.0] * 7) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 32])
def test_all_mass_on_one_position(n):
    x = [0.0] * n
    x[n // 2] = 4.0
    assert gini(x) == pytest.approx((n - 1) / n)
    # population std: mean 4/n, std (4/n) sqrt(n - 1)
    assert coefficient_of_variation(x) == pytest.approx(100 * math.sqrt(n - 1))


def test_cv_and_gini_hand_computed():
    x = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, population var 1.25
    assert coefficient_of_variation(x) == pytest.approx(100 * math.sqrt(1.25) / 2.5)
    # sorted ascending: 2 (1*1 + 2*2 + 3*3 + 4*4) / (4 * 10) - 5/4 = 60/40 - 1.25 = 0.25
    assert gini([4.0, 1.0, 3.0, 2.0]) == pytest.approx(0.25)
    assert gini(torch.tensor([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25)
    # mean absolute difference definition: sum_ij |xi - xj| / (2 n^2 mean) = 20 / 80
    assert gini(np.array(x)) == pytest.approx(np.abs(np.subtract.outer(x, x)).sum() / 80)


def test_cv_and_gini_reject_degenerate_input():
    with pytest.raises(ValueError, match="empty"):
        gini([])
    with pytest.raises(ValueError, match="non-negative"):
        gini([1.0, -0.5])
    with pytest.raises(ValueError, match="sum to 0"):
        gini([0.0, 0.0])
    with pytest.raises(ValueError, match="mean 0"):
        coefficient_of_variation([1.0, -1.0])


# ----------------------------------------------------------------------------- strength


def _hand_built() -> tuple[torch.Tensor, ...]:
    """Two pairs, D = 2; winners: pair 0 -> positions 0, 1, 0; pair 1 -> position 1."""
    queries = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 2.0], [0.5, 0.1]],
            [[0.0, 1.0], [9.0, 9.0], [0.0, 0.0]],
        ]
    )
    query_mask = torch.tensor([[True, True, True], [True, False, False]])
    doc = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    docs = torch.stack([doc, doc])
    doc_mask = torch.tensor([[True, True, True], [True, True, False]])
    return queries, query_mask, docs, doc_mask


def test_strength_hand_built():
    acc = UtilizationAccumulator(num_positions=3)
    acc.update(*_hand_built())
    s = acc.compute()
    # S[i, j]: S[0,0]=1 (pair 0), S[0,1]=1 (pair 1), S[1,1]=2, S[2,0]=0.5; N = [2, 1, 1]
    # per query position S[i]/N[i]: [.5, .5, 0], [0, 2, 0], [.5, 0, 0] -> mean over i
    assert s.strength == pytest.approx([1 / 3, 2.5 / 3, 0.0])
    assert s.strength_sum == pytest.approx([1.5, 3.0, 0.0])
    assert s.wins == [2, 2, 0]
    assert s.position_counts == [2, 2, 1]
    assert s.num_pairs == 2 and s.num_match_records == 4
    assert s.cv == pytest.approx(coefficient_of_variation(s.strength))
    assert s.gini == pytest.approx(gini(s.strength))
    assert s.index_usage is None and s.similarity is None
    assert "quantis" in s.note


def test_strength_relu_clamps_negative_maxsim():
    queries = torch.tensor([[[-1.0, 0.0], [0.0, 1.0]]])
    docs = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    acc = UtilizationAccumulator(relu=True)
    acc.update(queries, torch.ones(1, 2, dtype=torch.bool), docs, torch.ones(1, 2))
    s = acc.compute()
    # token 0: raw scores (0, -1) -> winner 0 with value 0; token 1 -> winner 0 value 1
    assert s.wins == [2, 0]
    assert s.strength == pytest.approx([0.5, 0.0])


def _naive(pairs, num_positions=None):
    """Python-loop reference: pairs of (q[Lq, D], qmask[Lq], d[M, D], dmask[M], doc_id)."""
    strength, wins, records, presence, won = {}, {}, {}, {}, set()
    p = num_positions or 0
    for q, qm, d, dm, doc_id in pairs:
        for j in range(len(dm)):
            if dm[j]:
                presence[j] = presence.get(j, 0) + 1
                p = max(p, j + 1)
        if not any(dm):
            continue
        for i in range(len(qm)):
            if not qm[i]:
                continue
            best, arg = -math.inf, None
            for j in range(len(dm)):
                if dm[j]:
                    score = float(np.dot(q[i], d[j]))
                    if score > best:
                        best, arg = score, j
            strength[i, arg] = strength.get((i, arg), 0.0) + best
            wins[arg] = wins.get(arg, 0) + 1
            records[i] = records.get(i, 0) + 1
            won.add((doc_id, arg))
    out = np.zeros(p)
    for i, n in records.items():
        for j in range(p):
            out[j] += strength.get((i, j), 0.0) / n
    out /= len(records)
    return out, [wins.get(j, 0) for j in range(p)], [presence.get(j, 0) for j in range(p)], won


def _random_batches(seed: int, dim: int = 8):
    """Batches of pairs with varying Lq, M, holes in masks, an empty doc and empty query."""
    gen = torch.Generator().manual_seed(seed)
    batches, pairs = [], []
    for lq, m, b in [(4, 5, 3), (6, 9, 4), (3, 2, 2), (5, 7, 3)]:
        q = torch.randn(b, lq, dim, generator=gen)
        d = torch.randn(b, m, dim, generator=gen)
        qm = torch.rand(b, lq, generator=gen) > 0.25
        dm = torch.rand(b, m, generator=gen) > 0.3
        ids = [f"doc{int(i)}" for i in torch.randint(0, 1000, (b,), generator=gen)]
        batches.append((q, qm, d, dm, ids))
    # an all-masked document and an all-masked query in the second batch
    batches[1][3][0] = False
    batches[1][1][1] = False
    for q, qm, d, dm, ids in batches:
        for k in range(q.shape[0]):
            pair = (q[k].double().numpy(), qm[k].tolist(), d[k].double().numpy(), dm[k].tolist())
            pairs.append((*pair, ids[k]))
    return batches, pairs


@pytest.mark.parametrize("num_positions", [None, 12])
def test_streaming_equals_naive_loop(num_positions):
    batches, pairs = _random_batches(seed=0)
    acc = UtilizationAccumulator(num_positions=num_positions)
    for q, qm, d, dm, ids in batches:
        acc.update(q, qm, d, dm, doc_ids=ids)
    total = sum(int(dm.sum()) for *_, dm, _ in batches)
    s = acc.compute(total_indexed_vectors=total)
    strength, wins, presence, won = _naive(pairs, num_positions)
    assert len(s.strength) == len(strength) == (num_positions or len(presence))
    np.testing.assert_allclose(s.strength, strength, rtol=1e-5, atol=1e-6)
    assert s.wins == wins
    assert s.position_counts == presence
    assert s.num_pairs == len(pairs)
    assert s.won_vectors == len(won)
    assert s.index_usage == pytest.approx(len(won) / total)
    assert s.cv == pytest.approx(coefficient_of_variation(strength))
    json.dumps(s.to_dict())


def test_one_padded_batch_equals_streaming():
    batches, _ = _random_batches(seed=1)
    streamed = UtilizationAccumulator()
    for q, qm, d, dm, ids in batches:
        streamed.update(q, qm, d, dm, doc_ids=ids)
        streamed.update_documents(d, dm)
    lq, m = max(b[0].shape[1] for b in batches), max(b[2].shape[1] for b in batches)

    def pad(t: torch.Tensor, length: int) -> torch.Tensor:
        widths = [0, 0] * (t.dim() - 2) + [0, length - t.shape[1]]
        return torch.nn.functional.pad(t, widths)

    q, qm, d, dm = (
        torch.cat([pad(b[k], length) for b in batches])
        for k, length in ((0, lq), (1, lq), (2, m), (3, m))
    )
    ids = [i for b in batches for i in b[4]]
    single = UtilizationAccumulator()
    single.update(q, qm, d, dm, doc_ids=ids)
    single.update_documents(d, dm)
    a, b = streamed.compute(100), single.compute(100)
    np.testing.assert_allclose(a.strength, b.strength, rtol=1e-6)
    np.testing.assert_allclose(a.strength_sum, b.strength_sum, rtol=1e-6)
    assert (a.wins, a.position_counts, a.won_vectors) == (b.wins, b.position_counts, b.won_vectors)
    assert a.num_match_records == b.num_match_records and a.num_pairs == b.num_pairs
    np.testing.assert_allclose(
        np.array(a.similarity, dtype=float), np.array(b.similarity, dtype=float), atol=1e-6
    )


def test_num_positions_limits():
    acc = UtilizationAccumulator(num_positions=2)
    q, qm = torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool)
    # masked slots beyond num_positions are ignored
    acc.update(q, qm, torch.randn(1, 4, 4), torch.tensor([[True, True, False, False]]))
    assert len(acc.compute().strength) == 2
    with pytest.raises(ValueError, match="vector at position 3 but num_positions=2"):
        acc.update(q, qm, torch.randn(1, 4, 4), torch.tensor([[True, False, False, True]]))
    with pytest.raises(ValueError, match="batch size B and dimension D"):
        acc.update(q, qm, torch.randn(2, 2, 4), torch.ones(2, 2))
    with pytest.raises(ValueError, match="positive integer"):
        UtilizationAccumulator(num_positions=0)
    # growing positions stop at the last unmasked slot, not at the padded width
    grow = UtilizationAccumulator()
    grow.update(
        q, qm, torch.randn(1, 6, 4), torch.tensor([[True, False, True, False, False, False]])
    )
    grow.update_documents(torch.randn(1, 6, 4), torch.tensor([[1, 1, 0, 1, 0, 0]]))
    s = grow.compute()
    assert len(s.strength) == 3 and s.position_counts == [1, 0, 1]
    assert len(s.similarity) == 4 and s.similarity[2][2] is None


def test_empty_accumulator_has_undefined_evenness():
    s = UtilizationAccumulator(num_positions=4).compute()
    assert s.strength == [0.0] * 4 and s.cv is None and s.gini is None
    assert UtilizationStats.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# ----------------------------------------------------------------------------- index usage


def test_index_usage_tiny():
    queries, query_mask, docs, doc_mask = _hand_built()
    acc = UtilizationAccumulator(num_positions=3)
    acc.update(queries, query_mask, docs, doc_mask, doc_ids=["a", "a"])  # wins a0, a1
    q = torch.tensor([[[1.0, 0.0]]])
    acc.update(q, torch.ones(1, 1), docs[:1], doc_mask[:1], doc_ids=["b"])  # wins b0
    s = acc.compute(total_indexed_vectors=6)
    assert s.won_vectors == 3
    assert s.index_usage == pytest.approx(0.5)
    assert s.total_indexed_vectors == 6
    with pytest.raises(ValueError, match="total_indexed_vectors=2"):
        acc.compute(total_indexed_vectors=2)
    with pytest.raises(ValueError, match="every update"):
        acc.update(q, torch.ones(1, 1), docs[:1], doc_mask[:1])
    with pytest.raises(ValueError, match="2 ids for a batch of 1"):
        acc.update(q, torch.ones(1, 1), docs[:1], doc_mask[:1], doc_ids=["a", "b"])


# ----------------------------------------------------------------------------- similarity


@pytest.mark.parametrize("positions", [None, 4])
def test_similarity_matrix_equals_loop(positions):
    gen = torch.Generator().manual_seed(3)
    acc = UtilizationAccumulator(similarity_positions=positions)
    total = np.zeros((7, 7))
    count = np.zeros((7, 7))
    docs_seen = 0
    for m in (5, 7, 3):
        d = torch.randn(3, m, 6, generator=gen)
        dm = torch.rand(3, m, generator=gen) > 0.3
        acc.update_documents(d, dm)
        docs_seen += 3
        for k in range(3):
            for i in range(m):
                for j in range(m):
                    if dm[k, i] and dm[k, j]:
                        a, b = d[k, i].double().numpy(), d[k, j].double().numpy()
                        total[i, j] += a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                        count[i, j] += 1
    sim = acc.compute().similarity
    p = positions or int(np.nonzero(count.any(0))[0].max()) + 1
    assert len(sim) == p and all(len(row) == p for row in sim)
    for i in range(p):
        for j in range(p):
            if count[i, j]:
                assert sim[i][j] == pytest.approx(total[i, j] / count[i, j], abs=1e-5)
            else:
                assert sim[i][j] is None
    assert acc.compute().similarity_documents == docs_seen


# ----------------------------------------------------------------------------- evaluator hook


def test_utilization_from_vectors_and_evaluator_hook(tmp_path):
    gen = torch.Generator().manual_seed(5)
    docs = [torch.randn(m, 4, generator=gen) for m in (3, 5, 2, 4)]
    queries = [torch.randn(n, 4, generator=gen) for n in (2, 3, 3)]
    qrels = {"q0": {"d1": 1, "d2": 0}, "q1": {"d0": 2, "d3": 1, "gone": 1}, "q2": {}}
    pairs = [(0, 1), (1, 0), (1, 3)]  # relevance > 0, in the index
    acc = UtilizationAccumulator(similarity_positions=3)
    for qi, di in pairs:
        acc.update(
            queries[qi][None],
            torch.ones(1, len(queries[qi])),
            docs[di][None],
            torch.ones(1, len(docs[di])),
            doc_ids=[di],
        )
    for d in docs:
        acc.update_documents(d[None], torch.ones(1, len(d)))
    expected = acc.compute(total_indexed_vectors=14).to_dict()
    got = utilization_from_vectors(queries, docs, pairs, similarity_positions=3, batch_size=2)
    assert got.wins == expected["wins"] and got.won_vectors == expected["won_vectors"]
    np.testing.assert_allclose(got.strength, expected["strength"], rtol=1e-6)
    np.testing.assert_allclose(got.similarity, expected["similarity"], atol=1e-6)
    assert got.index_usage == pytest.approx(expected["index_usage"])

    # a budget fixes the positions: slots no relevant document fills count with 0
    model = SimpleNamespace(compressor=SimpleNamespace(budget=7), relu=False)
    data = SimpleNamespace(
        corpus={f"d{i}": None for i in range(4)},
        queries={"q0": "", "q1": "", "q2": ""},
        qrels=qrels,
    )
    hook = UtilizationAnalysis(batch_size=2, output_dir=tmp_path)
    out = hook(model, data, SimpleNamespace(vectors=docs), SimpleNamespace(vectors=queries))
    unused = 7 - len(expected["wins"])
    assert out["utilization"]["wins"] == expected["wins"] + [0] * unused
    assert out["utilization"]["strength"][-unused:] == [0.0] * unused
    assert len(out["utilization"]["similarity"]) == 7  # the budget
    _assert_png(tmp_path / "utilization_strength.png")
    _assert_png(tmp_path / "utilization_similarity.png")
    sample = utilization_from_vectors(queries, docs, pairs, similarity_sample=2)
    assert sample.similarity_documents == 2


def test_utilization_from_a_vector_store_equals_its_vectors_in_memory(tmp_path):
    """Read a document at a time from a store of 3 chunks (pairs jump between chunks),
    the statistics are those of the same float16-rounded vectors in memory."""
    gen = torch.Generator().manual_seed(6)
    docs = [torch.randn(int(m), 4, generator=gen) for m in torch.randint(1, 6, (9,), generator=gen)]
    queries = [torch.randn(3, 4, generator=gen) for _ in range(4)]
    pairs = [(0, 8), (1, 0), (1, 4), (2, 7), (3, 1), (3, 8)]
    writer = VectorStoreWriter(tmp_path / "store")
    for start in range(0, 9, 4):
        writer.add(docs[start : start + 4], [f"d{i}" for i in range(start, min(start + 4, 9))])
    store = writer.finish()
    options = {"similarity_positions": 3, "similarity_sample": 5, "batch_size": 2}
    got = utilization_from_vectors(queries, store, pairs, **options)
    want = utilization_from_vectors(queries, [d.half().float() for d in docs], pairs, **options)
    assert got.to_dict() == want.to_dict()
    assert got.total_indexed_vectors == store.num_vectors


# ----------------------------------------------------------------------------- plots


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_plots_write_png(tmp_path):
    strength = [1.0, 0.5, 0.2]
    stats = UtilizationStats(
        strength=strength,
        strength_sum=strength,
        wins=[1, 1, 1],
        position_counts=[1, 1, 1],
        cv=coefficient_of_variation(strength),
        gini=gini(strength),
        num_pairs=10,
        num_match_records=100,
        similarity=[[1.0, 0.2], [0.2, None]],
    )
    _assert_png(plots.plot_strength(stats, tmp_path / "strength.png", title="agc"))
    _assert_png(plots.plot_similarity(stats, tmp_path / "sim.png"))
