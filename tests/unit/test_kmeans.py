"""Batched masked k-means and the CRISP compressor."""

from __future__ import annotations

import math

import hydra
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from colcompress.compressors.hashing import document_keys
from colcompress.compressors.kmeans import CrispKMeans, batched_kmeans
from colcompress.models.states import TokenStates
from tests.conftest import CONF


def _states(mask: torch.Tensor, is_query: bool = False) -> TokenStates:
    b, n = mask.shape
    return TokenStates(
        hidden=torch.zeros(b, n, 4),
        mask=mask,
        input_ids=torch.zeros(b, n, dtype=torch.long),
        is_query=is_query,
    )


def _blobs(
    num_clusters: int, per: int, dim: int, seed: int, spread: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors around ``num_clusters`` well-separated centres, shuffled."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.linalg.qr(torch.randn(dim, num_clusters, generator=g))[0].T  # orthonormal
    labels = torch.arange(num_clusters).repeat_interleave(per)
    x = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    perm = torch.randperm(len(labels), generator=g)
    return F.normalize(x[perm], dim=-1), labels[perm]


def _same_partition(assign: torch.Tensor, labels: torch.Tensor) -> bool:
    pairs_a = assign[:, None] == assign[None, :]
    pairs_l = labels[:, None] == labels[None, :]
    return bool((pairs_a == pairs_l).all())


@pytest.mark.parametrize("init", ["kmeans++", "farthest"])
@pytest.mark.parametrize("similarity", ["cosine", "l2"])
def test_recovers_separated_clusters(init: str, similarity: str) -> None:
    docs = [_blobs(4, 6, 16, seed) for seed in range(3)]
    x = torch.stack([d[0] for d in docs])
    mask = torch.ones(3, 24, dtype=torch.bool)
    mask[2, 18:] = False  # padding: the last doc only has its first 18 tokens
    result = batched_kmeans(
        x, mask, torch.full((3,), 4), iters=10, init=init, similarity=similarity
    )
    for b, (_, labels) in enumerate(docs):
        n = int(mask[b].sum())
        assert _same_partition(result.assign[b, :n], labels[:n])
        assert (result.assign[b, n:] == -1).all()
        for c in range(4):
            members = x[b, :n][result.assign[b, :n] == c]
            torch.testing.assert_close(result.centroids[b, c], members.mean(0))


def test_seeded_runs_are_identical_and_seed_matters() -> None:
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(4, 40, 8, generator=g), dim=-1)
    mask = torch.ones(4, 40, dtype=torch.bool)
    k = torch.full((4,), 6)
    a = batched_kmeans(x, mask, k, iters=3, seed=7)
    b = batched_kmeans(x, mask, k, iters=3, seed=7)
    assert torch.equal(a.assign, b.assign) and torch.equal(a.centroids, b.centroids)
    others = [batched_kmeans(x, mask, k, iters=3, seed=s).assign for s in range(8, 12)]
    assert any(not torch.equal(a.assign, o) for o in others)


@pytest.mark.parametrize("init", ["kmeans++", "farthest"])
def test_a_documents_clusters_do_not_depend_on_its_batch(init: str) -> None:
    """The same document alone, in another batch, or padded wider gets the same
    clusters, so index vectors do not change with the encoding batch size."""
    g = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(5, 30, 8, generator=g), dim=-1)
    mask = torch.arange(30)[None, :] < torch.tensor([30, 22, 17, 30, 9])[:, None]
    ids = torch.randint(1000, 2000, (5, 30), generator=g)
    k = torch.full((5,), 4)
    keys = document_keys(ids, mask, 3)
    full = batched_kmeans(x, mask, k, iters=3, init=init, keys=keys)
    for b in range(5):
        alone = batched_kmeans(x[b : b + 1], mask[b : b + 1], k[:1], 3, init, keys=keys[b : b + 1])
        assert torch.equal(alone.assign[0], full.assign[b])
        torch.testing.assert_close(alone.centroids[0], full.centroids[b])
    wide_x = torch.cat([x[1:2], torch.zeros(1, 14, 8)], 1)
    wide_mask = torch.cat([mask[1:2], torch.zeros(1, 14, dtype=torch.bool)], 1)
    wide = batched_kmeans(wide_x, wide_mask, k[:1], 3, init, keys=keys[1:2])
    assert torch.equal(wide.assign[0, :30], full.assign[1])
    # keys differ per document, so equal inputs under different ids seed differently
    assert len(set(keys.tolist())) == 5


def test_gradients_reach_inputs_through_centroids() -> None:
    x = F.normalize(torch.randn(2, 12, 6), dim=-1).requires_grad_(True)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    result = batched_kmeans(x, mask, torch.tensor([3, 3]), iters=4)
    weights = torch.randn_like(result.centroids)
    (result.centroids * weights).sum().backward()
    assert x.grad is not None
    # d(mean)/dx_i = 1 / |cluster| times the centroid's upstream gradient
    for b in range(2):
        for i in range(12):
            c = int(result.assign[b, i])
            if c < 0:
                assert x.grad[b, i].abs().sum() == 0
                continue
            size = int((result.assign[b] == c).sum())
            torch.testing.assert_close(x.grad[b, i], weights[b, c] / size)


def test_counts_fixed_and_short_sequences_keep_their_tokens() -> None:
    lengths = [20, 5, 8, 1]
    x = F.normalize(torch.randn(4, 20, 8), dim=-1)
    mask = torch.arange(20)[None, :] < torch.tensor(lengths)[:, None]
    crisp = CrispKMeans(budget=8, query_clusters=4, mode="fixed")
    docs = crisp(x, _states(mask))
    assert docs.vectors.shape == (4, 8, 8)
    assert docs.mask.sum(1).tolist() == [8, 5, 8, 1]
    # sequences with <= 8 tokens: the centroids are the tokens themselves, in order
    torch.testing.assert_close(docs.vectors[1, :5], x[1, :5])
    torch.testing.assert_close(docs.vectors[2, :8], x[2, :8])
    torch.testing.assert_close(docs.vectors[3, :1], x[3, :1])
    assert docs.vectors[1, 5:].abs().sum() == 0  # padding rows are zero and masked
    queries = crisp(x, _states(mask, is_query=True))
    assert queries.mask.sum(1).tolist() == [4, 4, 4, 1]


def test_counts_relative_per_sequence() -> None:
    lengths = [20, 9, 4, 1]
    x = F.normalize(torch.randn(4, 20, 8), dim=-1)
    mask = torch.arange(20)[None, :] < torch.tensor(lengths)[:, None]
    crisp = CrispKMeans(budget=None, mode="relative", ratio=4)
    out = crisp(x, _states(mask))
    assert out.mask.sum(1).tolist() == [math.ceil(n / 4) for n in lengths]
    capped = CrispKMeans(budget=3, mode="relative", ratio=4)
    assert capped(x, _states(mask)).mask.sum(1).tolist() == [3, 3, 1, 1]
    # queries are not capped by the document budget
    assert capped(x, _states(mask, is_query=True)).mask.sum(1).tolist() == [5, 3, 1, 1]


def test_exact_counts_with_duplicate_tokens() -> None:
    """Identical tokens would leave clusters empty without the refill."""
    x = F.normalize(torch.ones(2, 10, 4), dim=-1)
    x[1, 5:] = F.normalize(torch.tensor([1.0, -1.0, 0.0, 0.0]), dim=0)
    out = batched_kmeans(x, torch.ones(2, 10, dtype=torch.bool), torch.tensor([4, 4]))
    assert out.mask.sum(1).tolist() == [4, 4]
    counts = torch.stack([(out.assign == c).sum(1) for c in range(4)], 1)
    assert (counts > 0).all()


def test_non_contiguous_mask() -> None:
    """Punctuation-masked tokens in the middle are never clustered."""
    x = F.normalize(torch.randn(1, 10, 4), dim=-1)
    mask = torch.tensor([[1, 1, 0, 1, 0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    out = batched_kmeans(x, mask, torch.tensor([3]))
    assert (out.assign[~mask] == -1).all()
    assert out.mask.sum().item() == 3
    assert sorted(out.assign[mask].unique().tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"mode": "sizes"}, "compressor.mode"),
        ({"budget": None}, "compressor.budget"),
        ({"query_clusters": 0}, "compressor.query_clusters"),
        ({"mode": "relative", "ratio": None}, "compressor.ratio"),
        ({"mode": "relative", "ratio": 0.5}, "compressor.ratio"),
        ({"init": "random"}, "compressor.init"),
        ({"similarity": "dot"}, "compressor.similarity"),
        ({"iters": 0}, "compressor.iters"),
    ],
)
def test_invalid_options_name_the_option(kwargs: dict, option: str) -> None:
    args = {"budget": 8} | kwargs
    with pytest.raises(ValueError, match=option):
        CrispKMeans(**args)


def test_flags_and_posthoc() -> None:
    crisp = CrispKMeans(budget=8)
    assert crisp.applies_to_queries and not crisp.posthoc
    posthoc = CrispKMeans(budget=8, posthoc=True, cluster_queries=False)
    assert posthoc.posthoc and not posthoc.applies_to_queries


@pytest.mark.parametrize(
    ("name", "overrides", "posthoc", "mode"),
    [
        ("crisp", ["budget=8", "compressor.query_clusters=4"], False, "fixed"),
        (
            "crisp",
            ["budget=null", "compressor.mode=relative", "compressor.ratio=4"],
            False,
            "relative",
        ),
        ("kmeans_posthoc", ["budget=32", "compressor.query_clusters=8"], True, "fixed"),
    ],
)
def test_configs_instantiate_through_the_main_config(
    name: str, overrides: list[str], posthoc: bool, mode: str
) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=[f"compressor={name}", *overrides])
    compressor = hydra.utils.instantiate(cfg.compressor)
    assert isinstance(compressor, CrispKMeans)
    assert compressor.posthoc == posthoc and compressor.mode == mode
    assert compressor.applies_to_queries
