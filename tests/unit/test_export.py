"""Export to PyLate's format: the folder is laid out as PyLate saves, encodes as
PyLate would (reference in tests/checkpoints.py) and as the exported model did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel

from colcompress.models.colbert import ColBERT
from colcompress.models.export import export_pylate
from tests.checkpoints import DOCS, QUERIES, Encoded, Written, pylate_encode

TINY = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _vectors(model: ColBERT, texts: list[str], is_query: bool) -> list[torch.Tensor]:
    with torch.no_grad():
        if is_query:
            out = model.encode_queries(model.tokenize_queries(texts))
        else:
            out = model.encode_documents(model.tokenize_documents(texts))
    return [v[m] for v, m in zip(out.vectors, out.mask)]


def _reference(folder: Path, texts: list[str], is_query: bool) -> Encoded:
    """PyLate's encoding of the exported folder, from its files alone."""
    settings = json.loads((folder / "config_sentence_transformers.json").read_text())
    bert = BertModel.from_pretrained(folder).eval()
    linear = load_file(str(folder / "1_Dense" / "model.safetensors"))["linear.weight"]
    return pylate_encode(Written(folder, bert, linear), settings, texts, is_query)


def _assert_same(left: list[torch.Tensor], right: list[torch.Tensor]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"query_augmentation": True, "query_marker": "[unused0]", "doc_marker": "[unused1]"},
        {"query_augmentation": True, "attend_to_augmentation": True},
        {"query_augmentation": False, "skip_punctuation": False},
    ],
    ids=["colbert", "attend", "plain"],
)
def test_export_encodes_as_pylate_and_as_the_model(tmp_path: Path, options: dict):
    torch.manual_seed(0)
    model = ColBERT(random_config=TINY, dim=16, query_length=12, doc_length=20, **options).eval()
    folder = export_pylate(model, tmp_path / "exported")
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Dense"]
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Dense"]
    dense = json.loads((folder / "1_Dense" / "config.json").read_text())
    assert (dense["in_features"], dense["out_features"], dense["bias"]) == (32, 16, False)
    settings = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert settings["query_prefix"] == (options.get("query_marker") or "")
    assert (settings["query_length"], settings["document_length"]) == (12, 20)
    assert settings["do_query_expansion"] == options["query_augmentation"]
    assert len(settings["skiplist_words"]) == (0 if "skip_punctuation" in options else 32)
    reloaded = ColBERT(backbone=str(folder), format="pylate", dim=None).eval()
    for texts, is_query in ((QUERIES, True), (DOCS, False)):
        original = _vectors(model, texts, is_query)
        _assert_same(original, _reference(folder, texts, is_query).vectors)
        _assert_same(original, _vectors(reloaded, texts, is_query))


def test_export_refuses_a_scoring_pylate_lacks_and_a_used_folder(tmp_path: Path):
    clip = ColBERT(random_config=TINY, dim=16, normalize="clip", scoring="maxsim_relu")
    with pytest.raises(ValueError, match="normalize='clip'"):
        export_pylate(clip, tmp_path / "clip")
    assert not (tmp_path / "clip").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")
    with pytest.raises(FileExistsError, match=f"{used} exists"):
        export_pylate(ColBERT(random_config=TINY, dim=16), used)


def test_export_cli_writes_a_trained_checkpoint(tmp_path: Path):
    from colcompress.export import main

    torch.manual_seed(0)
    config = {
        "model": {
            "_target_": "colcompress.models.colbert.ColBERT",
            "backbone": "minilm",
            "dim": 16,
            "query_augmentation": True,
            "random_config": TINY,
        },
        "compressor": {"_target_": "colcompress.compressors.base.NoCompression"},
    }
    trained = ColBERT(random_config=TINY, dim=16, query_augmentation=True).eval()
    state = {f"model.{k}": v for k, v in trained.state_dict().items()}
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "colcompress_model_config": config}, checkpoint)
    main([str(checkpoint), str(tmp_path / "out")])
    reloaded = ColBERT(backbone=str(tmp_path / "out"), format="pylate", dim=None).eval()
    assert torch.equal(reloaded.projection.weight, trained.projection.weight)
    _assert_same(_vectors(trained, DOCS, False), _vectors(reloaded, DOCS, False))
