"""Static pruning baselines keep exactly the tokens they promise."""

from __future__ import annotations

import math

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir

from colcompress.compressors.prune import (
    AttentionPruning,
    FirstKPruning,
    IDFPruning,
    KSpacingPruning,
    TailPruning,
)
from colcompress.models.states import TokenStates
from tests.conftest import CONF

# two documents; the second has a punctuation hole at position 2 and padding
MASK = torch.tensor(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0],
    ],
    dtype=torch.bool,
)
REAL = [[i for i in range(11) if MASK[b, i]] for b in range(2)]  # real positions


def _states(ids: torch.Tensor | None = None, attentions: torch.Tensor | None = None) -> TokenStates:
    b, n = MASK.shape
    ids = ids if ids is not None else torch.arange(n).repeat(b, 1)
    return TokenStates(torch.zeros(b, n, 4), MASK, ids, attentions=attentions)


def _vectors() -> torch.Tensor:
    # vector of token (b, i) encodes its position: easy to read back what was kept
    b, n = MASK.shape
    pos = torch.arange(n, dtype=torch.float32)[None, :, None].expand(b, n, 1)
    return torch.cat([pos, torch.ones(b, n, 1)], dim=-1).clone().requires_grad_(True)


def _kept(pruner, states: TokenStates | None = None) -> list[list[int]]:
    out = pruner(_vectors(), states or _states())
    assert out.vectors[~out.mask].abs().sum() == 0
    return [out.vectors[b][out.mask[b], 0].long().tolist() for b in range(2)]


def test_first_k_fixed_and_relative() -> None:
    assert _kept(FirstKPruning(budget=3)) == [r[:3] for r in REAL]
    assert _kept(FirstKPruning(budget=30)) == REAL
    relative = [r[: math.ceil(len(r) / 4)] for r in REAL]
    assert _kept(FirstKPruning(budget=None, ratio=4)) == relative


def test_tail_keeps_last_real_tokens() -> None:
    assert _kept(TailPruning(budget=3)) == [r[-3:] for r in REAL]
    assert _kept(TailPruning(budget=None, ratio=2)) == [r[-math.ceil(len(r) / 2) :] for r in REAL]
    # the budget caps the relative count (contract: at most budget vectors)
    assert _kept(TailPruning(budget=2, ratio=2)) == [r[-2:] for r in REAL]


def test_k_spacing_every_s_th_token_from_the_first() -> None:
    assert _kept(KSpacingPruning(budget=None, spacing=3)) == [r[::3] for r in REAL]
    assert _kept(KSpacingPruning(budget=2, spacing=3)) == [r[::3][:2] for r in REAL]
    # matched counts: spacing s keeps as many as CRISP R_s clusters
    counts = [len(k) for k in _kept(KSpacingPruning(budget=None, spacing=4))]
    assert counts == [math.ceil(len(r) / 4) for r in REAL]


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 11, 20])
def test_k_spacing_fixed_count_evenly_spaced(budget: int) -> None:
    kept = _kept(KSpacingPruning(budget=budget))
    for real, got in zip(REAL, kept):
        c = min(budget, len(real))
        assert got == [real[(i * len(real)) // c] for i in range(c)]


def test_idf_keeps_highest_idf_tokens() -> None:
    ids = torch.tensor(
        [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [5, 9, 1, 9, 14, 8, 2, 0, 0, 0, 0]]
    )
    pruner = IDFPruning(budget=3)
    pruner.eval()
    with pytest.raises(RuntimeError, match="fit_idf"):
        pruner(_vectors(), _states(ids))
    # df: 5 and 6 in every doc, 8 in three, 9 in two, 14 in one, others unseen (top IDF)
    corpus = [[5, 6, 9, 8], [5, 6, 8, 9, 9], [5, 6, 8, 14], [6, 5]]
    pruner.fit_idf(corpus, vocab_size=20)
    idf = pruner.idf
    assert idf[14] > idf[9] > idf[8] > idf[5] == idf[6]
    kept = _kept(pruner, _states(ids))
    # doc 0: unseen ids 7, 10, 11, ... tie at the top IDF -> earliest positions
    assert kept[0] == [2, 5, 6]
    # doc 1 (real positions 0,1,3,4,5,6): ids 5, 9, 9, 14, 8, 2 -> 2 (unseen), 14, then 9
    assert kept[1] == [1, 4, 6]
    pruner.set_idf(torch.arange(16, dtype=torch.float32))  # idf = id
    assert _kept(pruner, _states(ids))[1] == [1, 3, 4]  # ids 9, 9, 14 beat 8, 5, 2


def test_idf_in_batch_fallback_while_training() -> None:
    ids = torch.tensor([[3, 3, 3, 3, 7, 3, 3, 3, 3, 3, 3], [3, 3, 0, 4, 3, 3, 3, 0, 0, 0, 0]])
    pruner = IDFPruning(budget=1)
    pruner.train()
    assert _kept(pruner, _states(ids)) == [[4], [3]]  # 7 and 4 appear in one doc only


def test_attention_keeps_most_attended_tokens() -> None:
    b, n = MASK.shape
    received = torch.rand(b, n)
    received[0, 7], received[0, 1] = 5.0, 4.0
    received[1, 5], received[1, 3], received[1, 2] = 5.0, 4.0, 9.0  # 2 is masked
    att = received[:, None, None, :].expand(b, 2, n, n).clone()
    att[:, :, 9:, :] = 100.0  # uniform on doc 0's real rows 9, 10; doc 1's are padding
    pruner = AttentionPruning(budget=2)
    assert pruner.needs_attention
    kept = _kept(pruner, _states(attentions=att))
    assert kept[0] == [1, 7]
    assert kept[1] == [3, 5]
    with pytest.raises(ValueError, match="attentions"):
        pruner(_vectors(), _states())


def test_attention_averages_over_heads_and_real_rows() -> None:
    n = 11
    att = torch.zeros(2, 2, n, n)
    att[1, 0, 0, 3] = 1.0  # head 0, real row 0 -> token 3
    att[1, 1, 1, 4] = 0.6  # head 1, real row 1 -> token 4
    att[1, 1, 9, 6] = 50.0  # padding row 9 of doc 1 -> token 6: ignored
    kept = _kept(AttentionPruning(budget=1), _states(attentions=att))
    assert kept[1] == [3]


def test_gradients_reach_kept_tokens_only() -> None:
    vectors = _vectors()
    out = TailPruning(budget=2, posthoc=False)(vectors, _states())
    out.vectors.sum().backward()
    grad_rows = vectors.grad.abs().sum(-1) > 0
    assert grad_rows[0].nonzero().squeeze(1).tolist() == REAL[0][-2:]
    assert grad_rows[1].nonzero().squeeze(1).tolist() == REAL[1][-2:]


@pytest.mark.parametrize(
    ("cls", "kwargs", "option"),
    [
        (FirstKPruning, {"budget": None}, "compressor.budget"),
        (TailPruning, {"budget": 4, "ratio": 0.5}, "compressor.ratio"),
        (KSpacingPruning, {"budget": None, "spacing": 0}, "compressor.spacing"),
        (KSpacingPruning, {"budget": None}, "compressor.budget"),
        (IDFPruning, {"budget": 0}, "budget"),
    ],
)
def test_invalid_options_name_the_option(cls, kwargs: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("name", "cls", "overrides"),
    [
        ("first_k", FirstKPruning, ["budget=5"]),
        ("tail", TailPruning, ["budget=null", "compressor.ratio=4"]),
        ("k_spacing", KSpacingPruning, ["budget=null", "compressor.spacing=4"]),
        ("idf", IDFPruning, ["budget=5"]),
        ("attention_prune", AttentionPruning, ["budget=5"]),
    ],
)
def test_configs_instantiate_through_the_main_config(name, cls, overrides) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=[f"compressor={name}", *overrides])
    compressor = hydra.utils.instantiate(cfg.compressor)
    assert isinstance(compressor, cls) and compressor.posthoc
    assert not compressor.applies_to_queries
    assert compressor.needs_attention == (name == "attention_prune")
