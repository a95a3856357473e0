"""SeqResize, MemTok, H-Pool and AGC ("Multi-Vector Index Compression in Any Modality")."""

from __future__ import annotations

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from scipy.cluster.hierarchy import fcluster, linkage
from torch import Tensor, nn
from transformers import BertConfig, BertModel

from colcompress.compressors.agc import AGC, random_scores
from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import single_cpu_thread, ward_clusters, ward_distances
from colcompress.compressors.hpool import HPool
from colcompress.compressors.memtok import MemTok
from colcompress.compressors.seqresize import SeqResize
from colcompress.models.scoring import maxsim
from colcompress.models.states import TokenStates
from tests.conftest import CONF

DIM = 8
HEADS = 2


def make_batch(
    lengths: list[int], extra: int = 0, seed: int = 0, hole: bool = True
) -> tuple[Tensor, TokenStates, Tensor | None]:
    """Random encoder output: unit vectors, a mask (with a skipped 'punctuation'
    token at position 2 of long documents), ids, attentions and appended states."""
    g = torch.Generator().manual_seed(seed)
    batch, n = len(lengths), max(lengths)
    vectors = F.normalize(torch.randn(batch, n, DIM, generator=g, dtype=torch.float64), dim=-1)
    attended = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    mask = attended.clone()
    if hole:
        mask[:, 2] &= torch.tensor(lengths) <= 4
    ids = torch.randint(1000, (batch, n), generator=g)
    logits = torch.randn(batch, HEADS, n + extra, n + extra, generator=g, dtype=torch.float64)
    keys = torch.cat([attended, torch.ones(batch, extra, dtype=torch.bool)], dim=1)
    attentions = logits.masked_fill(~keys[:, None, None, :], float("-inf")).softmax(-1)
    extra_vectors = None
    if extra:
        extra_vectors = F.normalize(
            torch.randn(batch, extra, DIM, generator=g, dtype=torch.float64), dim=-1
        )
    states = TokenStates(vectors, mask, ids, extra_vectors, attentions)
    return vectors, states, extra_vectors


def subset(
    vectors: Tensor, states: TokenStates, rows: list[int], pad: int
) -> tuple[Tensor, TokenStates]:
    """Documents ``rows`` of a batch, with ``pad`` more padding positions."""
    n = vectors.shape[1]
    t = states.attentions.shape[-1] - n
    m = n + pad
    v = torch.cat([vectors[rows], torch.zeros(len(rows), pad, DIM, dtype=vectors.dtype)], 1)
    mask = torch.cat([states.mask[rows], torch.zeros(len(rows), pad, dtype=torch.bool)], 1)
    ids = torch.cat([states.input_ids[rows], torch.zeros(len(rows), pad, dtype=torch.long)], 1)
    old = torch.cat([torch.arange(n), torch.arange(m, m + t)])
    attn = torch.zeros(len(rows), HEADS, m + t, m + t, dtype=vectors.dtype)
    attn[:, :, old[:, None], old[None, :]] = states.attentions[rows]
    return v, TokenStates(v, mask, ids, None, attn)


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    return BertModel(config)


def encode_with_extra(bert: BertModel, compressor: Compressor, lengths: list[int]):
    """What the model does: append the compressor's tokens, encode, project, normalise."""
    g = torch.Generator().manual_seed(1)
    n = max(lengths)
    ids = torch.randint(1, 100, (len(lengths), n), generator=g)
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    extra = compressor.extra_token_embeddings()
    words = bert.embeddings.word_embeddings(ids)
    inputs = torch.cat([words, extra[None].expand(len(lengths), -1, -1)], dim=1)
    full = torch.cat([mask, torch.ones(len(lengths), extra.shape[0], dtype=torch.bool)], 1)
    out = bert(inputs_embeds=inputs, attention_mask=full.long(), output_attentions=True)
    proj = nn.Linear(16, DIM, bias=False)
    hidden = out.last_hidden_state
    vectors = F.normalize(proj(hidden[:, :n]), dim=-1)
    extra_vectors = F.normalize(proj(hidden[:, n:]), dim=-1)
    states = TokenStates(hidden[:, :n], mask, ids, hidden[:, n:], out.attentions[-1])
    return proj, vectors, states, extra_vectors


def loss_of(out: Compressed) -> Tensor:
    weights = torch.linspace(-1.0, 1.0, out.vectors.shape[-1], dtype=out.vectors.dtype)
    return (F.normalize(out.vectors, dim=-1)[out.mask] * weights).sum()


BUDGET = 8
LENGTHS = [3, 12, 40, 1, 8]


def build(name: str) -> Compressor:
    if name == "seqresize":
        return SeqResize(budget=BUDGET, input_length=32, mlp_dim=16)
    if name == "memtok":
        return MemTok(budget=BUDGET, hidden_size=DIM)
    if name == "hpool":
        return HPool(budget=BUDGET)
    return AGC(budget=BUDGET, num_queries=3, hidden_size=DIM)


# ---------------------------------------------------------------- the contract
@pytest.mark.parametrize("name", ["seqresize", "memtok", "hpool", "agc"])
def test_shapes_masks_and_padding_never_wins_maxsim(name):
    compressor = build(name).double()
    extra = compressor.num_extra_tokens
    vectors, states, extra_vectors = make_batch(LENGTHS, extra=extra)
    out = compressor(vectors, states, extra_vectors)
    real = states.mask.sum(1)
    expected = real.clamp_max(BUDGET) if name in ("hpool", "agc") else torch.full_like(real, BUDGET)
    assert out.vectors.shape[0] == len(LENGTHS) and out.vectors.shape[2] == DIM
    assert out.vectors.shape[1] <= BUDGET and out.mask.dtype == torch.bool
    assert torch.equal(out.mask.sum(1), expected)
    assert (out.vectors[out.mask].norm(dim=-1) > 1e-6).all()  # no unmasked zero rows
    queries = F.normalize(torch.randn(3, 4, DIM, dtype=torch.float64), dim=-1)
    qmask = torch.ones(3, 4, dtype=torch.bool)
    scores = maxsim(queries, qmask, out.vectors, out.mask)
    poisoned = out.vectors.clone()
    poisoned[~out.mask] = 100.0 * queries[0, 0]
    assert torch.equal(maxsim(queries, qmask, poisoned, out.mask), scores)
    for b, doc in enumerate(out.unpadded()):
        alone = maxsim(queries, qmask, doc[None], torch.ones(1, len(doc), dtype=torch.bool))
        torch.testing.assert_close(alone[:, 0], scores[:, b])


@pytest.mark.parametrize("name", ["hpool", "agc"])
def test_short_documents_keep_their_tokens(name):
    compressor = build(name).double()
    vectors, states, _ = make_batch([3, 8, 40, 5], extra=compressor.num_extra_tokens)
    out = compressor(vectors, states)
    for b in (0, 1, 3):
        tokens = vectors[b][states.mask[b]]
        got = out.unpadded()[b]
        order = (got @ tokens.T).argmax(0)  # the output row equal to each token
        torch.testing.assert_close(got[order], tokens)


# ----------------------------------------------------------------------- hpool
def scipy_partition(points: np.ndarray, clusters: int) -> list[list[int]]:
    """scipy's Ward + maxclust on the unit vectors (the paper's merge cost on the
    cosine geometry), groups in order of their first member."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    labels = fcluster(linkage(unit, "ward"), clusters, "maxclust")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def canonical(labels: list[int]) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(label, len(seen)) for label in labels]


def test_ward_clusters_memberships_equal_scipy():
    vectors, states, _ = make_batch([60, 23, 9, 45, 1], seed=3)
    clusters = torch.tensor([7, 5, 20, 1, 3])
    labels = ward_clusters(ward_distances(vectors), states.mask, clusters)
    for b in range(len(clusters)):
        index = states.mask[b].nonzero()[:, 0]
        assert (labels[b][~states.mask[b]] == -1).all()
        got = labels[b][index].tolist()
        k = int(clusters[b])
        if len(index) <= k:
            assert got == list(range(len(index)))
            continue
        ref = [0] * len(index)
        for c, group in enumerate(scipy_partition(vectors[b][index].numpy(), k)):
            for i in group:
                ref[i] = c
        assert got == ref and canonical(got) == got and max(got) == k - 1


@pytest.mark.parametrize("backend", ["scipy", "torch"])
@pytest.mark.parametrize("protected", [0, 1, 2])
def test_hpool_means_follow_scipy_ward_and_protect_tokens(backend, protected):
    budget = 10
    hpool = HPool(budget=budget, protected_tokens=protected, backend=backend)
    vectors, states, _ = make_batch([50, 23, 9, 37], seed=protected)
    out = hpool(vectors, states)
    for b, doc in enumerate(out.unpadded()):
        index = states.mask[b].nonzero()[:, 0]
        kept = vectors[b, index[:protected]]
        pool = vectors[b, index[protected:]]
        if len(index) <= budget:
            torch.testing.assert_close(doc, vectors[b, index], rtol=0, atol=0)
            continue
        groups = scipy_partition(pool.numpy(), budget - protected)
        means = torch.stack([pool[g].mean(0) for g in groups])
        assert torch.equal(doc[:protected], kept)  # protected tokens unchanged
        torch.testing.assert_close(doc[protected:], means)


def test_hpool_pool_factor_and_budget_cap():
    vectors, states, _ = make_batch([20, 6], hole=False, seed=5)
    free = HPool(budget=None, pool_factor=3)(vectors, states)
    assert free.mask.sum(1).tolist() == [1 + 7, 1 + 2]  # ceil(19 / 3), ceil(5 / 3)
    groups = scipy_partition(vectors[0, 1:20].numpy(), 7)
    torch.testing.assert_close(
        free.vectors[0, 1:8], torch.stack([vectors[0, 1:20][g].mean(0) for g in groups])
    )
    capped = HPool(budget=5, pool_factor=2)(vectors, states)
    assert capped.mask.sum(1).tolist() == [5, 4]  # min(ceil(19 / 2), 4) + 1, ceil(5 / 2) + 1
    for backend in ("scipy", "torch"):  # nothing to pool at all
        vectors, states, _ = make_batch([1, 1], hole=False)
        out = HPool(budget=4, backend=backend)(vectors, states)
        assert out.mask.sum(1).tolist() == [1, 1] and torch.equal(out.vectors[:, 0], vectors[:, 0])


def test_hpool_other_test_budget_and_gradients():
    hpool = HPool(budget=32)
    for budget in (5, 128):
        hpool.set_budget(budget)
        vectors, states, _ = make_batch([150, 4], seed=2)
        vectors.requires_grad_(True)
        out = hpool(vectors, states)
        assert out.mask.sum(1).tolist() == [min(budget, 149), 4]
        out.vectors[out.mask].sum().backward()
        assert (vectors.grad[states.mask].abs().sum(-1) > 0).all()
        assert (vectors.grad[~states.mask] == 0).all()
    with pytest.raises(ValueError, match="protected_tokens"):
        hpool.set_budget(1)
    with pytest.raises(ValueError, match="budget or compressor.pool_factor"):
        HPool(budget=None)


# ------------------------------------------------------------------------- agc
def agc_reference(
    vectors: Tensor,
    states: TokenStates,
    m: int,
    weighting: bool = True,
    clustering: bool = True,
    scores: Tensor | None = None,
) -> list[Tensor]:
    """The paper's equations, one document at a time."""
    n = vectors.shape[1]
    docs = []
    for b in range(vectors.shape[0]):
        index = states.mask[b].nonzero()[:, 0]
        alpha = states.attentions[b, :, n:, :n].mean(dim=(0, 1))[index]
        select = alpha if scores is None else scores[b, index]
        top = torch.argsort(select, descending=True)[: min(m, len(index))]
        x = vectors[b, index]
        if not clustering:
            docs.append(x[top])
            continue
        unit = F.normalize(x, dim=-1)
        assign = (unit @ unit[top].T).argmax(1)
        weight = alpha if weighting else torch.ones_like(alpha)
        docs.append(
            torch.stack(
                [
                    (weight[assign == k, None] * x[assign == k]).sum(0) / weight[assign == k].sum()
                    for k in range(len(top))
                ]
            )
        )
    return docs


def test_agc_hand_built_example():
    s = 2**-0.5
    tokens = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-s, s], [0.6, -0.8]])
    vectors = tokens[None].double()
    mask = torch.ones(1, 5, dtype=torch.bool)
    attn = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    attn[0, 0, 5] = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.05, 0.1])  # universal query row
    states = TokenStates(vectors, mask, torch.zeros(1, 5, dtype=torch.long), None, attn)
    agc = AGC(budget=2, num_queries=1, hidden_size=2)
    out = agc(vectors, states)
    # centroids: tokens 1 (alpha .4) then 3 (.3); tokens 0 and 4 are closer to 1, token 2 to 3
    first = (0.1 * tokens[0] + 0.4 * tokens[1] + 0.05 * tokens[4]) / 0.55
    second = (0.05 * tokens[2] + 0.3 * tokens[3]) / 0.35
    torch.testing.assert_close(out.vectors[0], torch.stack([first, second]).double())
    plain = AGC(budget=2, num_queries=1, hidden_size=2, weighting=False)(vectors, states)
    torch.testing.assert_close(
        plain.vectors[0], torch.stack([tokens[[0, 1, 4]].mean(0), tokens[[2, 3]].mean(0)]).double()
    )
    only = AGC(budget=2, num_queries=1, hidden_size=2, clustering=False)(vectors, states)
    torch.testing.assert_close(only.vectors[0], tokens[[1, 3]].double())


@pytest.mark.parametrize(("weighting", "clustering"), [(True, True), (False, True), (True, False)])
def test_agc_matches_reference_and_ablations(weighting, clustering):
    vectors, states, _ = make_batch([30, 12, 5, 40], extra=4, seed=7)
    agc = AGC(budget=8, num_queries=4, hidden_size=DIM, weighting=weighting, clustering=clustering)
    out = agc(vectors, states)
    expected = agc_reference(vectors, states, 8, weighting, clustering)
    for got, ref in zip(out.unpadded(), expected, strict=True):
        torch.testing.assert_close(got, ref)


def test_agc_random_selection_is_per_document():
    vectors, states, _ = make_batch([30, 12, 25], extra=2, seed=11)
    agc = AGC(budget=6, num_queries=2, hidden_size=DIM, selection="random", seed=4)
    out = agc(vectors, states)
    scores = random_scores(states.input_ids, states.mask, 4)
    for got, ref in zip(
        out.unpadded(), agc_reference(vectors, states, 6, scores=scores), strict=True
    ):
        torch.testing.assert_close(got, ref)
    saliency = agc_reference(vectors, states, 6)
    assert not torch.allclose(out.unpadded()[0], saliency[0])
    # the same document in another batch, position and padding: the same vectors
    other_vectors, other_states = subset(vectors, states, [2, 0], pad=7)
    again = agc(other_vectors, other_states).unpadded()
    torch.testing.assert_close(again[0], out.unpadded()[2])
    torch.testing.assert_close(again[1], out.unpadded()[0])
    reseeded = AGC(budget=6, num_queries=2, hidden_size=DIM, selection="random", seed=5)
    assert not torch.allclose(reseeded(vectors, states).unpadded()[0], out.unpadded()[0])


def test_agc_other_test_budget_keeps_its_queries():
    agc = AGC(budget=4, hidden_size=DIM)
    assert agc.num_extra_tokens == 4
    vectors, states, _ = make_batch([30, 9], extra=4, seed=2)
    for budget in (2, 16):
        agc.set_budget(budget)
        out = agc(vectors, states)
        assert out.mask.sum(1).tolist() == [min(budget, 29), min(budget, 8)]
        for got, ref in zip(out.unpadded(), agc_reference(vectors, states, budget), strict=True):
            torch.testing.assert_close(got, ref)
    with pytest.raises(ValueError, match="attentions"):
        agc(vectors, TokenStates(vectors, states.mask, states.input_ids))
    wrong_t = make_batch([30, 9], extra=3)[1]
    with pytest.raises(ValueError, match="universal queries"):
        agc(vectors, wrong_t)


def test_agc_gradients_reach_universal_queries_and_encoder():
    bert = tiny_bert()
    agc = AGC(budget=3, num_queries=2, hidden_size=16)
    proj, vectors, states, _ = encode_with_extra(bert, agc, [12, 7])
    assert states.attentions.shape == (2, 2, 14, 14)
    # through the saliency weights alone (the token vectors held constant)
    (saliency_grad,) = torch.autograd.grad(
        loss_of(agc(vectors.detach(), states)), agc.queries, retain_graph=True
    )
    assert saliency_grad.abs().sum() > 0
    loss_of(agc(vectors, states)).backward()
    assert agc.queries.grad is not None and agc.queries.grad.abs().sum() > 0
    assert proj.weight.grad.abs().sum() > 0
    assert bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


# ------------------------------------------------------- seqresize and memtok
def test_seqresize_is_a_per_channel_mlp_over_the_padded_sequence():
    seq = SeqResize(budget=4, input_length=10, mlp_dim=6).double()
    vectors, states, _ = make_batch([14, 6], seed=4)
    out = seq(vectors, states)
    w1, w2 = seq.mlp[0].weight, seq.mlp[2].weight
    for b in range(2):
        x = torch.zeros(10, DIM, dtype=torch.float64)
        real = vectors[b][states.mask[b]][:10]  # real tokens in order, trimmed to n0
        x[: len(real)] = real
        torch.testing.assert_close(out.vectors[b], w2 @ torch.relu(w1 @ x))
    noisy = vectors.clone()
    noisy[~states.mask] = 7.0
    torch.testing.assert_close(seq(noisy, states).vectors, out.vectors)


def test_seqresize_gradients_and_fixed_budget():
    seq = SeqResize(budget=4, input_length=10, mlp_dim=6).double()
    vectors, states, _ = make_batch([14, 6], seed=4)
    vectors.requires_grad_(True)
    loss_of(seq(vectors, states)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in seq.parameters())
    assert vectors.grad[1][states.mask[1]].abs().sum(-1).gt(0).all()
    assert (vectors.grad[~states.mask] == 0).all() and (vectors.grad[0, 11:] == 0).all()  # trimmed
    seq.set_budget(4)
    with pytest.raises(ValueError, match="trained with budget=4"):
        seq.set_budget(8)
    with pytest.raises(ValueError, match="post-hoc"):
        SeqResize(budget=4, posthoc=True)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize(("n0", "budget"), [(12, 4), (10, 4), (7, 5), (300, 32)])
def test_seqresize_avgpool_init_is_adaptive_average_pooling(activation, n0, budget):
    torch.manual_seed(0)
    seq = SeqResize(
        budget, input_length=n0, mlp_dim=2 * budget + 3, activation=activation, init="avgpool"
    ).double()
    vectors, states, _ = make_batch([n0 + 4, n0 // 2, 3], seed=5)
    out = seq(vectors, states)
    padded = seq.pad_trunc(vectors, states.mask.bool())  # [B, n0, D]
    reference = F.adaptive_avg_pool1d(padded.transpose(1, 2), budget).transpose(1, 2)
    # exact up to the float32 rounding of the weights 1 / window
    torch.testing.assert_close(out.vectors, reference, rtol=1e-6, atol=1e-7)
    # the spare hidden units learn from the first step
    loss_of(out).backward()
    assert seq.mlp[2].weight.grad[:, 2 * budget :].abs().sum() > 0


def test_seqresize_avgpool_init_needs_two_hidden_units_per_output():
    with pytest.raises(ValueError, match=r"mlp_dim >= 2 \* budget \(= 8\), got 7"):
        SeqResize(budget=4, input_length=10, mlp_dim=7, init="avgpool")


def test_memtok_returns_memory_states_with_gradients():
    bert = tiny_bert()
    memtok = MemTok(budget=3, hidden_size=16)
    assert memtok.num_extra_tokens == 3 and memtok.extra_token_embeddings().shape == (3, 16)
    _, vectors, states, extra_vectors = encode_with_extra(bert, memtok, [12, 5])
    out = memtok(vectors, states, extra_vectors)
    assert torch.equal(out.vectors, extra_vectors) and out.mask.all()
    loss_of(out).backward()
    assert memtok.memory.grad is not None and memtok.memory.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="trained with budget=3"):
        memtok.set_budget(5)
    with pytest.raises(ValueError, match="extra_vectors"):
        memtok(vectors, states, None)


@pytest.mark.parametrize("cls", [MemTok, AGC])
def test_backbone_init_of_appended_tokens(cls, tmp_path):
    from colcompress.checkpoint import load_model_weights
    from colcompress.models.colbert import ColBERT

    tiny = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
    torch.manual_seed(0)
    plain = ColBERT(random_config={**tiny, "intermediate_size": 64}, dim=16, doc_length=16)
    model = ColBERT(
        random_config={**tiny, "intermediate_size": 64},
        dim=16,
        doc_length=16,
        compressor=cls(budget=4, hidden_size=32, init="backbone"),
    )
    tokens = model.compressor.extra_token_embeddings()
    embeddings = model.encoder.model.embeddings
    cls_id = model.tokenizer.cls_token_id
    # [CLS] + the position embedding at the centre of each of 4 windows of 16 positions
    expected = (
        embeddings.word_embeddings.weight[cls_id]
        + embeddings.position_embeddings.weight[[2, 6, 10, 14]]
    )
    torch.testing.assert_close(tokens, expected)
    default = cls(budget=4, hidden_size=32)
    assert default.init == "normal" and default.extra_token_embeddings().std() < 0.1
    # two-stage: from a plain checkpoint's embeddings
    path = tmp_path / "plain.ckpt"
    state = {f"model.{k}": v for k, v in plain.state_dict().items()}
    torch.save({"state_dict": state}, path)
    load_model_weights(model, path, fresh_compressor=True)
    words = plain.encoder.model.embeddings.word_embeddings.weight
    positions = plain.encoder.model.embeddings.position_embeddings.weight
    torch.testing.assert_close(
        model.compressor.extra_token_embeddings(), words[cls_id] + positions[[2, 6, 10, 14]]
    )
    with pytest.raises(ValueError, match="compressor.init must be one of"):
        cls(budget=4, hidden_size=32, init="cls")


@pytest.mark.parametrize("name", ["hpool", "agc"])
def test_hidden_space_compresses_the_backbone_states_then_projects(name):
    from colcompress.models.colbert import ColBERT

    config = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
    config["intermediate_size"] = 64

    def compressor(space: str) -> Compressor:
        if name == "hpool":
            return HPool(budget=3, space=space)
        return AGC(budget=3, hidden_size=32, space=space)

    torch.manual_seed(0)
    model = ColBERT(random_config=config, dim=16, doc_length=24, compressor=compressor("hidden"))
    model.eval()
    texts = ["a long document about vitamin d and the risk of cancer", "sleep and coffee"]
    batch = model.tokenize_documents(texts)
    with torch.no_grad():
        got = model.encode_documents(batch)
        states = model.encoder(
            batch.input_ids,
            batch.attention_mask,
            extra_embeddings=model.compressor.extra_token_embeddings(),
            output_attentions=name == "agc",
        )
        states.mask = batch.mask
        pooled = model.compressor(states.hidden, states)  # Z^(L) [B, M, H]
        projected = model.compressor(model._project(states.hidden, model.projection), states)
        model.compressor.set_space("projected")
        default = model.encode_documents(batch)
    assert pooled.vectors.shape[-1] == 32 and got.vectors.shape[-1] == 16
    torch.testing.assert_close(got.vectors, F.normalize(model.projection(pooled.vectors), dim=-1))
    assert torch.equal(got.mask, pooled.mask)
    torch.testing.assert_close(default.vectors, F.normalize(projected.vectors, dim=-1))
    assert not torch.allclose(got.vectors, default.vectors)
    with pytest.raises(ValueError, match="compressor.space must be one of"):
        compressor("raw")


def test_proportional_budgets_round_and_keep_one():
    hpool = HPool(budget=2, budget_mode="proportional", mean_tokens=100 / 3)
    lengths = torch.tensor([1, 3, 96, 50])
    # 2 * n * 3 / 100 = 0.06, 0.18, 5.76, 3.0
    assert hpool.doc_budgets(lengths).tolist() == [1, 1, 6, 3]
    assert hpool.doc_budgets(lengths, minimum=2).tolist() == [2, 2, 6, 3]
    assert HPool(budget=2).doc_budgets(lengths).tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="budget_mode must be one of"):
        HPool(budget=2, budget_mode="variable")
    with pytest.raises(ValueError, match="mean_tokens must be > 0"):
        AGC(budget=2, hidden_size=DIM, budget_mode="proportional", mean_tokens=0)


@pytest.mark.parametrize("name", ["hpool", "agc"])
def test_proportional_budget_matches_the_fixed_index_size(name):
    lengths = [10, 20, 30, 40, 25, 25]  # mean 25
    budget = 5
    if name == "hpool":
        comp = HPool(budget=budget, budget_mode="proportional")
    else:
        comp = AGC(budget=budget, num_queries=3, hidden_size=DIM, budget_mode="proportional")
    assert comp.needs_corpus_lengths and comp.mean_tokens is None
    vectors, states, _ = make_batch(lengths, extra=0 if name == "hpool" else 3, hole=False)
    comp.fit_lengths(lengths)  # the corpus, as a job fits it before indexing
    assert comp.mean_tokens == 25.0
    counts = []
    for rows in ([0, 1], [2, 3], [4, 5]):  # indexed batch by batch
        v, s = subset(vectors, states, rows, pad=3)
        counts += comp(v, s).mask.sum(1).tolist()
    assert counts == [2, 4, 6, 8, 5, 5]  # budget * n / mean
    assert sum(counts) == budget * len(lengths)
    fixed = HPool(budget=budget) if name == "hpool" else AGC(budget, DIM, num_queries=3)
    assert fixed(vectors, states).mask.sum(1).tolist() == [budget] * len(lengths)


def test_proportional_agc_clusters_within_each_documents_budget():
    agc = AGC(budget=4, num_queries=3, hidden_size=DIM, budget_mode="proportional")
    agc.fit_lengths([8, 24])  # mean 16: budgets 2 and 6
    vectors, states, _ = make_batch([8, 24], extra=3, hole=False, seed=3)
    out = agc(vectors, states)
    assert out.mask.sum(1).tolist() == [2, 6]
    # the short document equals fixed AGC with its own budget of 2
    v, s = subset(vectors, states, [0], pad=0)
    reference = AGC(budget=2, num_queries=3, hidden_size=DIM)(v, s)
    torch.testing.assert_close(out.vectors[0, :2], reference.vectors[0])


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("name", "cls"), [("seqresize", SeqResize), ("memtok", MemTok), ("hpool", HPool), ("agc", AGC)]
)
def test_configs_instantiate_through_the_main_config(name, cls):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=[f"compressor={name}", "budget=5"])
    kwargs = {"hidden_size": 16} if cls.needs_hidden_size else {}
    compressor = hydra.utils.instantiate(cfg.compressor, **kwargs)
    assert isinstance(compressor, cls) and compressor.budget == 5
    assert compressor.needs_hidden_size == (name in ("memtok", "agc"))
    assert compressor.num_extra_tokens == (5 if name in ("memtok", "agc") else 0)
    assert compressor.needs_attention == (name == "agc")
    assert compressor.budget_fixed_at_train == (name in ("seqresize", "memtok"))
    if name == "seqresize":
        assert compressor.input_length == cfg.model.doc_length == 300  # the indexing length


def test_ward_clusters_runs_on_one_cpu_thread_and_restores_the_count():
    vectors, states, _ = make_batch([60, 23, 9, 45, 1], seed=3)
    clusters = torch.tensor([7, 5, 20, 1, 3])
    threads = torch.get_num_threads()
    seen = []
    with single_cpu_thread(torch.device("cpu")):
        seen.append(torch.get_num_threads())
        inside = ward_clusters(ward_distances(vectors), states.mask, clusters)
    assert seen == [1] and torch.get_num_threads() == threads
    torch.set_num_threads(2)
    try:
        outside = ward_clusters(ward_distances(vectors), states.mask, clusters)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(inside, outside)
