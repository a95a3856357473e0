"""Lossless dominance pruning: exactness under ColBERT_P scoring, LP, regularizers."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from scipy.optimize import linprog

from colcompress.compressors import lossless
from colcompress.compressors.base import Compressed
from colcompress.compressors.lossless import LosslessPruning, _separated, nondominated
from colcompress.models.scoring import maxsim
from colcompress.models.states import TokenStates
from tests.conftest import CONF


def farkas_dominated(x: np.ndarray, j: int) -> bool:
    """The paper's LP, literally: x >= 0 with [d - d_1, ..., d - d_n] x = -d."""
    d = x[j]
    others = np.delete(x, j, axis=0)
    a = (d[None, :] - others).T
    res = linprog(np.zeros(len(others)), A_eq=a, b_eq=-d, bounds=(0, None), method="highs")
    return res.status == 0


def low_rank_doc(n: int, dim: int, rank: int, seed: int) -> np.ndarray:
    """Vectors in a random rank-``rank`` subspace, norms uniform in [0, 1]: many dominated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * rng.uniform(0.0, 1.0, size=(n, 1))


def clustered_doc(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Vectors around a few unit directions, norms in [0.3, 1]: short ones inside a
    cluster are dominated, the others extreme in some direction."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, clusters, n)] + 0.3 / np.sqrt(dim) * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * rng.uniform(0.3, 1.0, size=(n, 1))


def _states(mask: torch.Tensor) -> TokenStates:
    b, n = mask.shape
    return TokenStates(torch.zeros(b, n, 4), mask, torch.zeros(b, n, dtype=torch.long))


def test_hand_built_dominated_and_not() -> None:
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    cases = {
        # 0.4 e1 + 0.4 e2: weights sum to 0.8 < 1 -> every q with q.d > 0 prefers e1 or e2
        "inside": (np.array([0.4, 0.4]), True),
        # a shorter copy of e1 loses to e1 on every query that scores it positively
        "shorter": (np.array([0.5, 0.0]), True),
        # the zero vector never scores above 0
        "zero": (np.array([0.0, 0.0]), True),
        # q = (1, 1) scores it 1.2 > 1: it supplies the maximum
        "outside": (np.array([0.6, 0.6]), False),
        # on the hull face: q = (1, 1) ties (1 vs 1), strictly not dominated
        "boundary": (np.array([0.5, 0.5]), False),
        # q = (-1, 0) scores it positively and e1, e2 at most 0
        "opposite": (np.array([-0.3, 0.0]), False),
    }
    for name, (d, dominated) in cases.items():
        x = np.stack([e1, e2, d])
        keep = nondominated(x)
        assert keep[:2].all(), name
        assert keep[2] == (not dominated), name
        if name != "zero":  # the paper's LP agrees (its A x = 0 is trivially feasible)
            assert farkas_dominated(x, 2) == dominated, name


def test_exact_only_under_relu_scoring() -> None:
    doc = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = LosslessPruning().eval()(doc, _states(mask))
    assert out.mask.sum() == 1 and torch.equal(out.vectors[0, 0], doc[0, 0])
    q = torch.tensor([[[-1.0, 0.0]]])  # plain MaxSim: the pruned 0.5 e1 scored -0.5 > -1
    qmask = torch.ones(1, 1, dtype=torch.bool)
    assert maxsim(q, qmask, out.vectors, out.mask, relu=True) == 0
    assert maxsim(q, qmask, doc, mask) == -0.5
    assert maxsim(q, qmask, out.vectors, out.mask) == -1.0


def test_duplicates_and_single_vector_are_kept() -> None:
    d = np.array([[0.3, 0.4, 0.0], [0.3, 0.4, 0.0]])
    assert nondominated(d).tolist() == [True, True]  # ties are not strict dominance
    assert nondominated(d[:1]).tolist() == [True]
    assert nondominated(np.zeros((3, 3))).sum() == 1  # never empty


@pytest.mark.parametrize(
    ("n", "dim", "rank", "seed"), [(40, 8, 3, 0), (50, 16, 16, 1), (60, 32, 5, 2), (30, 8, 8, 3)]
)
def test_agrees_with_the_papers_lp(n: int, dim: int, rank: int, seed: int) -> None:
    x = low_rank_doc(n, dim, rank, seed)
    keep = nondominated(x)
    reference = np.array([not farkas_dominated(x, j) for j in range(n)])
    assert np.array_equal(keep, reference)


@pytest.mark.parametrize(
    ("n", "dim", "clusters", "seed"), [(100, 4, 3, 0), (200, 8, 3, 1), (300, 12, 2, 3)]
)
def test_clustered_documents_agree_with_the_papers_lp(
    n: int, dim: int, clusters: int, seed: int
) -> None:
    x = clustered_doc(n, dim, clusters, seed)
    keep = nondominated(x)
    reference = np.array([not farkas_dominated(x, j) for j in range(n)])
    assert np.array_equal(keep, reference)
    assert 0 < (~keep).sum() < n  # both verdicts occur


def test_separation_certifies_only_non_dominated_vectors() -> None:
    x = np.vstack([clustered_doc(70, 16, 6, 4), low_rank_doc(30, 16, 3, 5)])
    dominated = np.array([farkas_dominated(x, j) for j in range(len(x))])
    passed = _separated(x, np.arange(len(x)), 100)
    assert not (passed & dominated).any()
    assert passed.sum() > 0.8 * (~dominated).sum()
    # the first step tests each vector's own direction only
    own = (x @ x.T).argmax(0) == np.arange(len(x))
    assert np.array_equal(_separated(x, np.arange(len(x)), 1), own)


def test_documents_outside_the_hull_need_no_lp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The far half of a sphere around 3 e_1: each point is the maximum along its
    normal, most are not along their own direction; the certificates decide every
    vector without an LP."""
    rng = np.random.default_rng(6)
    normals = rng.normal(size=(900, 32))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    x = 3.0 * np.eye(32)[0] + normals[normals[:, 0] > 0][:300]
    x /= np.linalg.norm(x, axis=1).max()
    own = (x @ x.T).argmax(0) == np.arange(len(x))
    assert own.sum() < len(x) / 2

    def no_lp(*args: object) -> None:
        raise AssertionError("an LP was solved")

    monkeypatch.setattr(lossless, "_test_block", no_lp)
    assert nondominated(x).all()


def _queries(docs: list[np.ndarray], pruned: list[np.ndarray], dim: int, seed: int) -> torch.Tensor:
    """Random unit queries plus adversarial ones aimed at the pruned vectors."""
    rng = np.random.default_rng(seed)
    qs = [rng.normal(size=(3000, dim))]
    for x, gone in zip(docs, pruned):
        qs.append(x[rng.integers(0, len(x), (500, 4))].sum(1))  # inside the doc's span
        if len(gone):
            qs.append(gone)  # each pruned vector's own direction
            picks = gone[rng.integers(0, len(gone), 500)]
            qs.append(picks + 0.05 * rng.normal(size=picks.shape))
    q = np.concatenate(qs)
    return torch.from_numpy(q / np.linalg.norm(q, axis=1, keepdims=True))


def test_exact_pruning_keeps_every_colbert_p_score() -> None:
    dim = 128
    docs = [low_rank_doc(80, dim, rank, seed) for seed, rank in enumerate([3, 5, 8])]
    rng = np.random.default_rng(9)
    full_rank = rng.normal(size=(60, dim))
    docs.append(
        full_rank / np.linalg.norm(full_rank, axis=1, keepdims=True) * rng.uniform(0, 1, (60, 1))
    )
    n = max(len(x) for x in docs)
    vectors = torch.zeros(len(docs), n, dim, dtype=torch.float64)
    mask = torch.zeros(len(docs), n, dtype=torch.bool)
    for b, x in enumerate(docs):
        vectors[b, : len(x)] = torch.from_numpy(x)
        mask[b, : len(x)] = True
    assert float(vectors.norm(dim=-1).max()) <= 1.0
    pruner = LosslessPruning(strategy="lp").eval()
    out = pruner(vectors, _states(mask))
    kept = out.mask.sum(1)
    assert (kept[:3] < 0.7 * mask.sum(1)[:3]).all()  # the low-rank docs lose many vectors
    assert pruner.vectors_in == int(mask.sum()) and pruner.vectors_out == int(kept.sum())
    assert pruner.prune_ratio == pytest.approx(1 - int(kept.sum()) / int(mask.sum()))

    pruned = []
    for b, x in enumerate(docs):
        survivors = out.vectors[b][out.mask[b]].numpy()
        gone = [v for v in x if not np.isclose(survivors, v).all(1).any()]
        pruned.append(np.array(gone).reshape(-1, dim))
    queries = _queries(docs, pruned, dim, seed=0)[:, None, :]  # one token per query
    qmask = torch.ones(queries.shape[:2], dtype=torch.bool)
    full = maxsim(queries, qmask, vectors, mask, relu=True)
    after = maxsim(queries, qmask, out.vectors, out.mask, relu=True)
    assert len(queries) > 5000
    torch.testing.assert_close(after, full, rtol=0, atol=1e-9)

    pruner.reset_counts()
    assert pruner.vectors_in == pruner.vectors_out == 0 and pruner.prune_ratio == 0.0


def test_real_encoded_queries_score_the_same_after_pruning(beir_dir: Path) -> None:
    """A ColBERT_P model (tiny, random, 3-d so that many vectors are dominated) encodes
    real NFCorpus documents and queries; every query's score of every document is
    unchanged by exact pruning at index time."""
    from colcompress.data.beir import load_beir
    from colcompress.models.colbert import ColBERT

    data = load_beir(beir_dir / "nfcorpus", "test")
    texts = [doc.text for doc in list(data.corpus.values())[:12]]
    questions = list(data.queries.values())[:40]
    torch.manual_seed(0)
    tiny = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
    model = ColBERT(
        compressor=LosslessPruning(strategy="lp"),
        dim=3,
        doc_length=64,
        normalize="clip",
        scoring="maxsim_relu",
        random_config={**tiny, "intermediate_size": 64},
    ).eval()
    with torch.no_grad():
        # short vectors (norms spread below 1, as the regularizers make them): clipping
        # would otherwise put every vector on the unit sphere, where none is dominated
        model.projection.weight.mul_(0.1)
        docs = model.tokenize_documents(texts)
        full = model.encode_documents(docs, compress=False)
        pruned = model.encode_documents(docs)
        queries = model.encode_queries(model.tokenize_queries(questions))
    assert model.compressor.prune_ratio > 0.3  # 3-d: most of ~60 vectors are dominated
    torch.testing.assert_close(
        model.score(queries, pruned), model.score(queries, full), rtol=0, atol=1e-5
    )
    # each query token on its own, too (a sum could hide compensating changes)
    tokens = Compressed(queries.vectors.flatten(0, 1)[:, None], queries.mask.flatten()[:, None])
    torch.testing.assert_close(
        model.score(tokens, pruned), model.score(tokens, full), rtol=0, atol=1e-5
    )


def test_svd_and_norm_strategies() -> None:
    x = torch.from_numpy(low_rank_doc(40, 16, 10, 5)).float()[None]
    mask = torch.ones(1, 40, dtype=torch.bool)
    exact = LosslessPruning(strategy="lp").eval()(x, _states(mask)).mask.sum()
    svd = LosslessPruning(strategy="lp_svd", svd_mode="cumulative", svd_threshold=0.3).eval()
    reduced = svd(x, _states(mask)).mask.sum()
    assert 1 <= reduced <= 40
    svd_abs = LosslessPruning(strategy="lp_svd", svd_mode="absolute", svd_threshold=1e-9).eval()
    assert svd_abs(x, _states(mask)).mask.sum() == exact  # keeping the full span: exact
    norms = x.norm(dim=-1)[0]
    norm = LosslessPruning(strategy="norm", norm_threshold=0.5).eval()
    out = norm(x, _states(mask))
    torch.testing.assert_close(out.vectors[0][out.mask[0]], x[0][norms >= 0.5])
    # min_keep: a document whose vectors are all short keeps its longest one
    tiny = LosslessPruning(strategy="norm", norm_threshold=2.0).eval()(x, _states(mask))
    assert tiny.mask.sum() == 1
    torch.testing.assert_close(tiny.vectors[0, 0], x[0, int(norms.argmax())])
    # a budget caps the survivors (largest norms first)
    capped = LosslessPruning(strategy="norm", norm_threshold=0.0, budget=5).eval()
    assert capped(x, _states(mask)).mask.sum() == 5


def test_regularizers_match_their_definitions() -> None:
    torch.manual_seed(0)
    vectors = torch.randn(3, 7, 5) * 0.3
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    vectors.requires_grad_(True)
    pruner = LosslessPruning(nuclear_weight=2.0, similarity_weight=0.5, l1_weight=3.0)
    terms = pruner.regularization(Compressed(vectors, mask))
    values = {name: float(term.detach()) for name, term in terms.items()}
    assert set(terms) == {"nuclear_norm", "doc_similarity", "l1_norm"}
    nuc, sim, l1, count = 0.0, 0.0, 0.0, 0
    for b in range(3):
        d = vectors[b][mask[b]].detach().double()
        n = d.shape[0]
        nuc += torch.linalg.svdvals(d).sum() / min(n, 5)
        norms = d.norm(dim=-1)
        for i in range(n):
            others = sum(float(d[i] @ d[j]) for j in range(n) if j != i)
            sim += float((norms[i] - 1) / (norms[i] + 1e-2)) * others / n**2
        l1 += float(norms.sum())
        count += n
    assert values["nuclear_norm"] == pytest.approx(2.0 * float(nuc) / 3, rel=1e-5)
    assert values["doc_similarity"] == pytest.approx(0.5 * sim / 3, rel=1e-5)
    assert values["l1_norm"] == pytest.approx(3.0 * l1 / count, rel=1e-5)
    sum(terms.values()).backward()
    assert torch.isfinite(vectors.grad).all() and vectors.grad.abs().sum() > 0
    assert LosslessPruning().regularization(Compressed(vectors, mask)) == {}


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"strategy": "greedy"}, "compressor.strategy"),
        ({"posthoc": False}, "compressor.posthoc"),
        ({"strategy": "norm"}, "compressor.norm_threshold"),
        ({"svd_mode": "relative"}, "compressor.svd_mode"),
        ({"strategy": "lp_svd", "svd_threshold": 1.5}, "compressor.svd_threshold"),
        ({"margin": -1.0}, "compressor.margin"),
        ({"workers": 0}, "compressor.workers"),
        ({"l1_weight": -0.1}, "compressor.l1_weight"),
    ],
)
def test_invalid_options_name_the_option(kwargs: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        LosslessPruning(**kwargs)


@pytest.mark.slow
def test_worker_processes_give_the_same_result() -> None:
    docs = [torch.from_numpy(low_rank_doc(30, 16, 4, s)).float() for s in range(3)]
    vectors = torch.stack(docs)
    mask = torch.ones(3, 30, dtype=torch.bool)
    serial = LosslessPruning().eval()(vectors, _states(mask))
    parallel = LosslessPruning(workers=2).eval()(vectors, _states(mask))
    assert torch.equal(serial.mask, parallel.mask)
    assert torch.equal(serial.vectors, parallel.vectors)


@pytest.mark.parametrize(("name", "strategy"), [("lossless_lp", "lp"), ("lossless_norm", "norm")])
def test_configs_instantiate_through_the_main_config(name: str, strategy: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=[f"compressor={name}"])
    compressor = hydra.utils.instantiate(cfg.compressor)
    assert isinstance(compressor, LosslessPruning)
    assert compressor.strategy == strategy and compressor.posthoc and compressor.budget is None
    assert compressor.regularization(Compressed(torch.rand(2, 3, 16) * 0.1, torch.ones(2, 3)))
