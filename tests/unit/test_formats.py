"""Checkpoint formats: tiny random checkpoints in colbert-ai's and PyLate's on-disk
layouts encode vector for vector as those libraries do (references in
tests/checkpoints.py, written from transformers primitives)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

from colcompress.models.colbert import ColBERT
from tests.checkpoints import (
    DOCS,
    QUERIES,
    Encoded,
    pylate_encode,
    stanford_docs,
    stanford_queries,
    write_pylate,
    write_stanford,
)

COLBERTV2 = {
    "query_token_id": "[unused0]",
    "doc_token_id": "[unused1]",
    "query_maxlen": 32,
    "doc_maxlen": 180,
    "mask_punctuation": True,
    "attend_to_mask_tokens": False,
    "dim": 16,
    "similarity": "cosine",
    "interaction": "colbert",
}


@torch.no_grad()
def _assert_encodes_like(model: ColBERT, queries: Encoded, docs: Encoded) -> None:
    """Token ids, attention and every kept vector equal the reference's."""
    for texts, ref, is_query in ((QUERIES, queries, True), (DOCS, docs, False)):
        tokenize = model.tokenize_queries if is_query else model.tokenize_documents
        encode = model.encode_queries if is_query else model.encode_documents
        batch = tokenize(texts)
        attended = batch.attention_mask.bool()
        assert torch.equal(attended, ref.attention_mask.bool())
        # ids agree wherever they reach the encoder (PyLate pads with [MASK], not [PAD])
        assert torch.equal(batch.input_ids[attended], ref.input_ids[attended])
        out = encode(batch)
        for vectors, mask, expected in zip(out.vectors, out.mask, ref.vectors):
            torch.testing.assert_close(vectors[mask], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("attend", [False, True])
def test_stanford_checkpoint_encodes_as_colbert_ai(tmp_path: Path, attend: bool):
    metadata = {**COLBERTV2, "attend_to_mask_tokens": attend, "doc_maxlen": 12}
    written = write_stanford(tmp_path / "colbertv2", metadata)
    model = ColBERT(backbone=str(written.folder), format="stanford", dim=None).eval()
    assert (model.dim, model.query_length, model.doc_length) == (16, 32, 12)
    assert model.tokenizer.convert_ids_to_tokens(model.query_marker_id) == "[unused0]"
    queries = stanford_queries(written, metadata, QUERIES)
    assert queries.input_ids.shape == (3, 32)
    assert (queries.input_ids == model.tokenizer.mask_token_id).sum() > 50  # augmented
    _assert_encodes_like(model, queries, stanford_docs(written, metadata, DOCS))


def test_stanford_pytorch_bin_with_colbert_ai_defaults(tmp_path: Path):
    """A checkpoint saved as pytorch_model.bin whose artifact.metadata sets only dim:
    ColBERTConfig's defaults (doc_maxlen 220, [unused0]/[unused1], punctuation masked)."""
    written = write_stanford(tmp_path / "old", {"dim": 8}, dim=8, binary=True)
    model = ColBERT(backbone=str(written.folder), format="stanford", dim=None).eval()
    assert (model.dim, model.query_length, model.doc_length) == (8, 32, 220)
    _assert_encodes_like(
        model, stanford_queries(written, {}, QUERIES), stanford_docs(written, {}, DOCS)
    )


def test_stanford_skiplist_drops_punctuation_vectors(tmp_path: Path):
    written = write_stanford(tmp_path / "c", COLBERTV2)
    model = ColBERT(backbone=str(written.folder), format="stanford", dim=None)
    batch = model.tokenize_documents(["a, b."])
    tokens = model.tokenizer.convert_ids_to_tokens(batch.input_ids[0][batch.mask[0]].tolist())
    assert tokens == ["[CLS]", "[unused1]", "a", "b", "[SEP]"]
    assert len(model.skip_ids) == len(string.punctuation)


PYLATE = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 16,
    "document_length": 24,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": list(string.punctuation),
    "prompts": {},
    "default_prompt_name": None,
}


@pytest.mark.parametrize(
    "settings",
    [
        PYLATE,
        {**PYLATE, "attend_to_expansion_tokens": True},
        # a word outside the vocabulary is [UNK] to PyLate: [UNK] vectors are dropped
        {**PYLATE, "do_query_expansion": False, "skiplist_words": ["!", "?", "calciferol"]},
        {**PYLATE, "prompts": {"ask": "Answer: "}, "default_prompt_name": "ask"},
    ],
    ids=["default", "attend", "no-expansion", "prompt"],
)
def test_pylate_model_encodes_as_pylate(tmp_path: Path, settings: dict):
    written = write_pylate(tmp_path / "pylate", settings, do_lower_case=True)
    model = ColBERT(backbone=str(written.folder), format="pylate", dim=None).eval()
    assert (model.query_length, model.doc_length) == (16, 24)
    # the prefixes are tokens of their own, added after the vocabulary
    assert model.query_marker_id == len(model.tokenizer) - 2
    assert model.encoder.model.get_input_embeddings().num_embeddings == len(model.tokenizer)
    queries = pylate_encode(written, settings, QUERIES, is_query=True)
    docs = pylate_encode(written, settings, DOCS, is_query=False)
    _assert_encodes_like(model, queries, docs)


def test_answerai_small_layout_uses_its_96d_dense(tmp_path: Path):
    """answerai-colbert-small-v1: PyLate files over colbert-ai's (HF_ColBERT root weights
    with their own linear.weight); the 96-d 1_Dense is the projection PyLate uses."""
    settings = {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 32,
        "document_length": 20,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
    }
    written = write_pylate(tmp_path / "answerai", settings, dim=96, stanford_root=True)
    model = ColBERT(backbone=str(written.folder), format="pylate", dim=None).eval()
    assert model.dim == 96 and model.tokenizer.convert_ids_to_tokens(model.doc_marker_id) == (
        "[unused1]"
    )
    assert torch.equal(model.projection.weight, written.linear)
    queries = pylate_encode(written, settings, QUERIES, is_query=True)
    _assert_encodes_like(model, queries, pylate_encode(written, settings, DOCS, is_query=False))


def test_settings_given_override_the_checkpoints(tmp_path: Path):
    written = write_stanford(tmp_path / "c", COLBERTV2)
    model = ColBERT(
        backbone=str(written.folder),
        format="stanford",
        dim=None,
        query_length=8,
        query_marker="",
        skip_punctuation=False,
    )
    batch = model.tokenize_queries(["a b"])
    assert batch.input_ids.shape == (1, 8) and model.query_marker_id is None
    assert model.skip_ids.numel() == 0


def test_a_folder_not_in_the_declared_format_is_refused(tmp_path: Path):
    stanford = write_stanford(tmp_path / "stanford", COLBERTV2).folder
    pylate = write_pylate(tmp_path / "pylate", PYLATE).folder
    with pytest.raises(ValueError, match=rf"{pylate} is not a Stanford ColBERT.*artifact"):
        ColBERT(backbone=str(pylate), format="stanford", dim=None)
    with pytest.raises(ValueError, match=rf"{stanford} is not a PyLate.*modules.json"):
        ColBERT(backbone=str(stanford), format="pylate", dim=None)
    with pytest.raises(ValueError, match=r"model.dim=32 but .* projects to 16"):
        ColBERT(backbone=str(stanford), format="stanford", dim=32)
    with pytest.raises(ValueError, match=r"model.format must be one of"):
        ColBERT(backbone=str(stanford), format="colbert")


def test_a_dense_with_bias_is_refused(tmp_path: Path):
    folder = write_pylate(tmp_path / "p", PYLATE).folder
    config = folder / "1_Dense" / "config.json"
    config.write_text(config.read_text().replace('"bias": false', '"bias": true'))
    with pytest.raises(ValueError, match=r"1_Dense/config.json: bias=true"):
        ColBERT(backbone=str(folder), format="pylate", dim=None)


def test_a_hub_id_offline_and_not_cached_names_the_switch(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from colcompress.hub import local_folder, set_offline

    set_offline(True)
    with pytest.raises(FileNotFoundError, match=r"model.backbone='owner/none'.*hub_offline=false"):
        local_folder("owner/none", "model.backbone")


def test_model_sizes_come_from_the_checkpoints_projection(tmp_path: Path):
    from colcompress.models.formats import model_sizes

    folder = write_pylate(tmp_path / "p", PYLATE, dim=96).folder
    assert model_sizes({"format": "pylate", "backbone": str(folder)}) == (32, 96)
    tiny = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2}
    assert model_sizes({"backbone": "minilm", "dim": None, "random_config": tiny}) == (32, 32)
    assert model_sizes({"backbone": "minilm", "dim": 16, "format": "hf"}) == (384, 16)


def test_a_hub_download_skips_weights_a_safetensors_file_replaces():
    from colcompress.hub import ignore_patterns

    files = ["config.json", "model.safetensors", "pytorch_model.bin", "1_Dense/pytorch_model.bin"]
    ignored = ignore_patterns(files)
    assert "pytorch_model.bin" in ignored and "*.h5" in ignored
    assert "1_Dense/pytorch_model.bin" not in ignored  # its folder has no safetensors
