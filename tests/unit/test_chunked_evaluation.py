"""Evaluation with ``chunk_docs``: the corpus goes through a vector store on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from colcompress.data.beir import BeirData, Doc
from colcompress.evaluation.encode import encode, encode_to_store
from colcompress.evaluation.evaluator import evaluate_model
from colcompress.evaluation.utilization_analysis import UtilizationAnalysis
from colcompress.index import FlatIndex, VectorStore
from colcompress.models.colbert import ColBERT

TINY = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
WORDS = "protein vitamin cancer diet cell fibre heart sugar blood iron".split()


@pytest.fixture(scope="module")
def model() -> ColBERT:
    torch.manual_seed(0)
    return ColBERT(random_config={**TINY, "intermediate_size": 64}, dim=16, doc_length=16).eval()


@pytest.fixture(scope="module")
def data() -> BeirData:
    corpus = {
        f"d{i}": Doc(title="", text=" ".join(WORDS[(i * j) % 10] for j in range(1, 3 + i % 7)))
        for i in range(13)
    }
    queries = {f"q{i}": f"{WORDS[i]} {WORDS[i + 3]}" for i in range(4)}
    qrels = {f"q{i}": {f"d{3 * i}": 1, f"d{3 * i + 1}": 2} for i in range(4)}
    return BeirData(corpus=corpus, queries=queries, qrels=qrels, name="toy", split="test")


def test_encode_to_store_holds_the_rounded_encoding(model: ColBERT, data: BeirData, tmp_path):
    """One document per batch: the same forward passes as encoding in memory, so the
    store holds exactly their float16 rounding, in corpus order."""
    ids = list(data.corpus)
    texts = [model.document_input(d, data.corpus[d]) for d in ids]
    whole = encode(model, texts, False, batch_size=1)
    chunked = encode_to_store(model, texts, ids, tmp_path / "store", chunk_docs=5, batch_size=1)
    assert chunked is not None
    store = chunked.vectors
    assert isinstance(store, VectorStore) and store.num_chunks == 3 and store.ids == ids
    assert all(
        torch.equal(got, want.half().float())
        for got, want in zip(store, whole.vectors, strict=True)
    )
    assert torch.equal(chunked.tokens, whole.tokens)
    assert chunked.num_vectors == whole.num_vectors == store.num_vectors
    with pytest.raises(ValueError, match="chunk_docs=0"):
        encode_to_store(model, texts, ids, tmp_path / "other", chunk_docs=0)


def test_evaluate_model_in_chunks(model: ColBERT, data: BeirData, tmp_path: Path):
    """Same documents, vectors and metrics keys as in memory; the flat ranking equals the
    in-memory ranking of the stored vectors; the store is deleted unless kept."""
    analysis = UtilizationAnalysis(batch_size=3)
    common = {"top_k": 5, "batch_size": 1, "metrics": ["ndcg@10"], "analyses": [analysis]}
    memory = evaluate_model(model, data, FlatIndex(batch_size=4), **common)
    chunked = evaluate_model(
        model, data, FlatIndex(batch_size=4), output_dir=tmp_path, chunk_docs=4, **common
    )
    assert memory is not None and chunked is not None
    assert not (tmp_path / "vectors").exists()  # deleted after the run
    assert (tmp_path / "run.trec").is_file()
    for key in ("num_docs", "num_vectors", "avg_tokens_per_doc", "index_bytes"):
        assert chunked["index"][key] == memory["index"][key]
    util = chunked["utilization"]
    assert util["total_indexed_vectors"] == memory["index"]["num_vectors"]
    assert util["num_pairs"] == memory["utilization"]["num_pairs"] == 8
    assert util["wins"] == memory["utilization"]["wins"]  # float16 rounding keeps the winners
    assert 0.0 <= chunked["metrics"]["ndcg@10"] <= 1.0

    kept = evaluate_model(
        model,
        data,
        FlatIndex(batch_size=4),
        output_dir=tmp_path,
        chunk_docs=4,
        keep_vectors=True,
        **common,
    )
    store = VectorStore.open(tmp_path / "vectors")
    assert store.ids == list(data.corpus) and store.num_chunks == 4
    reference = FlatIndex(batch_size=4)
    reference.build(list(store), store.ids)
    queries = encode(model, list(data.queries.values()), True, batch_size=1).vectors
    ranked = reference.search(queries, 5).as_run(list(data.queries))
    trec = (tmp_path / "run.trec").read_text().split("\n")
    assert [line.split()[2] for line in trec if line][:5] == list(ranked["q0"])
    assert kept is not None and kept["metrics"] == chunked["metrics"]


def test_evaluate_model_in_chunks_without_output_dir_cleans_its_temp(
    model: ColBERT, data: BeirData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp goes
    out = evaluate_model(model, data, FlatIndex(), top_k=3, batch_size=4, chunk_docs=6)
    assert out is not None and out["index"]["num_docs"] == 13
    assert [p for p in tmp_path.iterdir() if p.name.startswith("colcompress-vectors-")] == []
