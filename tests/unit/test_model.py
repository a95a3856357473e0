"""The encoder, tokenisation, projection and encoding of the ColBERT model."""

from __future__ import annotations

import copy

import pytest
import torch

from colcompress.compressors.base import Compressed, Compressor
from colcompress.models.colbert import ColBERT

TINY = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


@pytest.fixture(scope="module")
def model() -> ColBERT:
    torch.manual_seed(0)
    return ColBERT(random_config=TINY, dim=16, query_length=12, doc_length=24).eval()


def test_query_augmentation_pads_with_mask_tokens_scored_not_attended():
    m = ColBERT(random_config=TINY, dim=16, query_length=12, query_augmentation=True)
    q = m.tokenize_queries(["vitamin d"])
    assert q.input_ids.shape == (1, 12)
    n_real = int(q.attention_mask.sum())
    assert (q.input_ids[0, n_real:] == m.tokenizer.mask_token_id).all()
    assert q.mask.all() and not q.attention_mask[0, n_real:].any()


def test_no_augmentation_keeps_query_as_is(model):
    q = model.tokenize_queries(["vitamin d", "a much longer query about vitamin d"])
    assert torch.equal(q.mask, q.attention_mask.bool())
    assert q.input_ids.shape[1] < 12


def test_markers_are_inserted_after_cls():
    m = ColBERT(random_config=TINY, dim=16, query_marker="[unused0]", doc_marker="[unused1]")
    q, d = m.tokenize_queries(["x"]), m.tokenize_documents(["y"])
    assert q.input_ids[0, 1] == m.tokenizer.convert_tokens_to_ids("[unused0]")
    assert d.input_ids[0, 1] == m.tokenizer.convert_tokens_to_ids("[unused1]")


def test_unknown_marker_is_refused():
    with pytest.raises(ValueError, match="model.query_marker"):
        ColBERT(random_config=TINY, dim=16, query_marker="[not-a-token]")


def test_punctuation_vectors_are_masked_in_documents(model):
    d = model.tokenize_documents(["vitamin, d."])
    comma = model.tokenizer.convert_tokens_to_ids(",")
    assert not d.mask[d.input_ids == comma].any()
    assert d.attention_mask[d.input_ids == comma].all()


def test_document_truncation(model):
    d = model.tokenize_documents(["word " * 100])
    assert d.input_ids.shape[1] == 24


def test_encodings_are_unit_norm_and_masked(model):
    d = model.tokenize_documents(["vitamin d deficiency", "a"])
    out = model.encode_documents(d)
    norms = out.vectors[out.mask].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert torch.equal(out.mask, d.mask)


def test_clip_normalisation_keeps_norms_below_one():
    m = ColBERT(random_config=TINY, dim=16, normalize="clip", scoring="maxsim_relu").eval()
    out = m.encode_documents(m.tokenize_documents(["vitamin d deficiency and bones"]))
    assert (out.vectors[out.mask].norm(dim=-1) <= 1 + 1e-6).all()


@pytest.mark.parametrize(
    "option", [{"normalize": "l1"}, {"scoring": "dot"}, {"dropout": 1.0}, {"dropout": -0.1}]
)
def test_bad_options_name_the_option(option):
    with pytest.raises(ValueError, match="model." + next(iter(option))):
        ColBERT(random_config=TINY, dim=16, **option)


def test_a_new_model_is_in_training_mode_whatever_the_backbone_source():
    for model in (ColBERT("minilm", dim=None), ColBERT(random_config=TINY, dim=None)):
        assert all(m.training for m in model.modules())


def test_dropout_zero_makes_training_forward_passes_deterministic():
    docs = ["vitamin d deficiency and bones", "statins and muscle pain"]
    kept = ColBERT(random_config=TINY, dim=16).train()
    assert {m.p for m in kept.encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    torch.manual_seed(0)
    off = ColBERT(random_config=TINY, dim=16, dropout=0.0).train()
    assert {m.p for m in off.encoder.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    first = off.encode_documents(off.tokenize_documents(docs)).vectors
    second = off.encode_documents(off.tokenize_documents(docs)).vectors
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    on = kept.encode_documents(kept.tokenize_documents(docs)).vectors
    assert not torch.equal(on, kept.encode_documents(kept.tokenize_documents(docs)).vectors)


def test_fit_projection_is_the_top_singular_subspace(model):
    texts = [f"document {i} about topic {i % 3} with words {i * 7}" for i in range(20)]
    energy = model.fit_projection(texts)
    assert 0 < energy <= 1
    w = model.projection.weight
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)


def test_fit_projection_for_clip_starts_every_sample_vector_inside_the_unit_ball():
    texts = [f"document {i} about topic {i % 3} with words {i * 7}" for i in range(20)]
    torch.manual_seed(0)
    m = ColBERT(random_config=TINY, dim=16, normalize="clip", scoring="maxsim_relu").eval()
    m.fit_projection(texts)
    w = m.projection.weight
    gram = w @ w.T  # orthogonal rows, one common scale
    torch.testing.assert_close(gram, gram[0, 0] * torch.eye(16), atol=1e-5, rtol=0)
    batch = m.tokenize_documents(texts)
    with torch.no_grad():
        raw = m.projection(m.encoder(batch.input_ids, batch.attention_mask).hidden)
    norms = raw.norm(dim=-1)[batch.mask]
    assert norms.max() == pytest.approx(1.0, abs=1e-5)
    assert norms.min() < 1  # not all clipped: the norms stay free to shrink


def test_fit_projection_needs_enough_tokens():
    m = ColBERT(random_config=TINY, dim=16)
    with pytest.raises(ValueError, match="at least dim=16"):
        m.fit_projection(["a"])


def test_identity_projection_when_dim_is_none():
    m = ColBERT(random_config=TINY, dim=None)
    assert m.dim == 32 and torch.equal(m.projection.weight, torch.eye(32))


class _AppendProbe(Compressor):
    """Keeps the appended tokens' vectors and checks the attention layout."""

    num_extra_tokens = 3
    needs_attention = True

    def __init__(self, hidden: int) -> None:
        super().__init__(budget=3)
        self.tokens = torch.nn.Parameter(torch.randn(3, hidden))
        self.seen: list = []

    def extra_token_embeddings(self):
        return self.tokens

    def forward(self, vectors, states, extra_vectors=None):
        self.seen.append(states)
        return Compressed(extra_vectors, torch.ones(extra_vectors.shape[:2], dtype=torch.bool))


def test_appended_tokens_reach_compressor_with_attention_and_gradients():
    torch.manual_seed(0)
    probe = _AppendProbe(32)
    m = ColBERT(random_config=TINY, dim=16, compressor=probe).eval()
    d = m.tokenize_documents(["vitamin d deficiency and bone health", "short"])
    out = m.encode_documents(d)
    states = probe.seen[-1]
    n = d.input_ids.shape[1]
    assert out.vectors.shape == (2, 3, 16)
    assert states.extra_hidden.shape == (2, 3, 32)
    assert states.attentions.shape == (2, 2, n + 3, n + 3)
    # padding of the short document receives no attention
    pad = ~d.attention_mask[1].bool()
    assert states.attentions[1, :, :, :n][..., pad].abs().max() == 0
    out.vectors.sum().backward()
    assert probe.tokens.grad is not None and probe.tokens.grad.abs().sum() > 0


def test_appended_tokens_sit_right_after_each_sequence():
    """A document's appended-token states do not depend on the batch's padding."""
    torch.manual_seed(0)
    probe = _AppendProbe(32)
    m = ColBERT(random_config=TINY, dim=16, compressor=probe).eval()
    alone = m.encode_documents(m.tokenize_documents(["short"])).vectors[0]
    batched = m.encode_documents(
        m.tokenize_documents(["short", "a much longer document with many words"])
    ).vectors[0]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=1e-4)


def test_too_many_appended_tokens_is_an_error():
    probe = _AppendProbe(32)
    probe.tokens = torch.nn.Parameter(torch.randn(600, 32))
    m = ColBERT(random_config=TINY, dim=16, compressor=probe)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        m.encode_documents(m.tokenize_documents(["x"]))


# ------------------------------------------------------------ last-layer attention
def _tiny_backbone():
    from colcompress.models.backbone import load_backbone

    torch.manual_seed(0)
    model, tokenizer = load_backbone("minilm", {**TINY, "attention_probs_dropout_prob": 0.5})
    return model, tokenizer


def test_only_the_last_layer_runs_eager_and_its_attention_equals_eager_everywhere():
    from colcompress.models.encoder import RECORDED, Encoder, last_attention_module

    model, tokenizer = _tiny_backbone()
    reference = copy.deepcopy(model)
    reference.config._attn_implementation = "eager"
    encoder = Encoder(model, record_attention=True).eval()
    reference.eval()
    batch = tokenizer(["vitamin d and the bones", "fish oil"], return_tensors="pt", padding=True)
    states = encoder(batch["input_ids"], batch["attention_mask"], output_attentions=True)
    want = reference(**batch, output_attentions=True)
    torch.testing.assert_close(states.attentions, want.attentions[-1])
    torch.testing.assert_close(states.hidden, want.last_hidden_state)
    assert model.config._attn_implementation == "sdpa"
    assert last_attention_module(model).config._attn_implementation == RECORDED
    assert model.pooler is None  # token states only: no parameter left without gradient
    # with appended tokens: rows of real + appended positions, padding gets no weight
    extra = torch.randn(3, TINY["hidden_size"])
    states = encoder(batch["input_ids"], batch["attention_mask"], extra, output_attentions=True)
    n = batch["input_ids"].shape[1]
    assert states.attentions.shape == (2, TINY["num_attention_heads"], n + 3, n + 3)
    padded = ~batch["attention_mask"][1].bool()
    assert (states.attentions[1, :, :, :n][..., padded] < 1e-6).all()


@pytest.mark.parametrize("random_config", [TINY, None], ids=["tiny", "minilm"])
def test_appended_rows_are_the_eager_attention_of_the_appended_tokens(random_config):
    """With attention_rows="appended" every layer keeps SDPA, and the appended tokens'
    rows (hence AGC's saliency) are those of eager attention on the same layer input
    (the all-rows recorder's) and, to float32 rounding, of an all-eager backbone."""
    from colcompress.compressors.agc import AGC
    from colcompress.models.backbone import load_backbone
    from colcompress.models.encoder import Encoder, last_attention_module

    torch.manual_seed(0)
    model, tokenizer = load_backbone("minilm", random_config)
    model.eval()
    plain = Encoder(copy.deepcopy(model))
    every_row = Encoder(copy.deepcopy(model), record_attention=True)
    reference = copy.deepcopy(model)
    reference.config._attn_implementation = "eager"
    eager = []
    last_attention_module(reference).register_forward_hook(lambda m, a, out: eager.append(out[1]))
    encoder = Encoder(model, record_attention=True, attention_rows="appended")
    texts = ["vitamin d deficiency and the risk of bone fractures in older adults", "fish oil"]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    hidden, t = model.config.hidden_size, 4
    extra = torch.randn(t, hidden)
    with torch.no_grad():
        states = encoder(ids, mask, extra, output_attentions=True)
        fused = plain(ids, mask, extra)
        full = every_row(ids, mask, extra, output_attentions=True)
        want = Encoder(reference)(ids, mask, extra)
    n = ids.shape[1]
    assert states.attentions.shape == (2, model.config.num_attention_heads, t, n + t)
    torch.testing.assert_close(states.attentions, full.attentions[:, :, n:], atol=1e-6, rtol=0)
    torch.testing.assert_close(states.attentions, eager[-1][:, :, n:], atol=1e-5, rtol=0)
    agc = AGC(budget=2, hidden_size=hidden, num_queries=t)
    alpha = agc.saliency(states.attentions, mask.bool())
    torch.testing.assert_close(alpha, agc.saliency(full.attentions, mask.bool()), atol=1e-6, rtol=0)
    assert (alpha[~mask.bool()] == 0).all()
    assert torch.equal(states.hidden, fused.hidden)  # the recorded layer ran SDPA too
    torch.testing.assert_close(states.hidden, want.hidden)
    torch.testing.assert_close(states.extra_hidden, want.extra_hidden)


def test_agc_records_only_the_appended_rows_and_gradients_reach_its_queries():
    from colcompress.compressors.agc import AGC

    torch.manual_seed(0)
    agc = AGC(budget=2, hidden_size=TINY["hidden_size"], num_queries=3)
    m = ColBERT(random_config=TINY, dim=16, compressor=agc)
    assert m.encoder._recorder.rows == "appended"
    d = m.tokenize_documents(["vitamin d deficiency and bone health", "short"])
    states = m.encoder(d.input_ids, d.attention_mask, agc.extra_token_embeddings(), True)
    assert states.attentions.shape == (2, TINY["num_attention_heads"], 3, d.input_ids.shape[1] + 3)
    rows = states.attentions.sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))  # no attention dropout
    out = m.encode_documents(d)
    assert out.vectors.shape == (2, 2, 16)
    (out.vectors.sum() + out.vectors.square().sum()).backward()
    assert agc.queries.grad is not None and agc.queries.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="none were appended"):
        m.encoder(d.input_ids, d.attention_mask, output_attentions=True)


def test_recorded_attention_is_the_softmax_also_in_training():
    """No attention dropout on the recorded layer: the saliency AGC computes from it is
    deterministic and every row sums to 1, in train mode too."""
    from colcompress.models.encoder import Encoder

    model, tokenizer = _tiny_backbone()
    encoder = Encoder(model, record_attention=True).train()
    batch = tokenizer(["vitamin d and the bones"], return_tensors="pt")
    first = encoder(batch["input_ids"], batch["attention_mask"], output_attentions=True)
    again = encoder(batch["input_ids"], batch["attention_mask"], output_attentions=True)
    rows = first.attentions.sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert first.attentions.requires_grad
    # the earlier layers still drop out: hidden states differ, attentions are softmaxes
    assert not torch.equal(first.hidden, again.hidden)


def test_attention_without_a_recorder_is_refused():
    from colcompress.models.encoder import Encoder

    model, tokenizer = _tiny_backbone()
    batch = tokenizer(["x"], return_tensors="pt")
    with pytest.raises(ValueError, match="record_attention=True"):
        Encoder(model)(batch["input_ids"], batch["attention_mask"], output_attentions=True)


def test_a_checkpoint_without_the_compressors_parameters_is_refused(tmp_path):
    from colcompress.checkpoint import load_model_weights
    from colcompress.compressors.memtok import MemTok

    plain = ColBERT(random_config=TINY, dim=16)
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in plain.state_dict().items()}}, path)
    memtok = ColBERT(random_config=TINY, dim=16, compressor=MemTok(4, hidden_size=32))
    with pytest.raises(ValueError, match=r"compressor's parameters \['compressor.memory'\]"):
        load_model_weights(memtok, path)
    assert load_model_weights(ColBERT(random_config=TINY, dim=16), path) is not None
