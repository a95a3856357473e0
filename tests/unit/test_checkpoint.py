"""Checkpoints load with weights_only=True: a crafted pickle never runs code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from colcompress.checkpoint import (
    UnsafeCheckpointError,
    load_model_weights,
    model_config,
    read_checkpoint,
)
from colcompress.models.colbert import ColBERT

TINY = {
    "num_hidden_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


class _WritesMarker:
    """Unpickling this calls ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {}, "colcompress_model_config": {}, "payload": _WritesMarker(marker)}, path
    )
    assert not marker.exists()
    return path, marker


@pytest.mark.parametrize("load", [read_checkpoint, model_config, None])
def test_malicious_checkpoint_is_refused_without_running_code(malicious, load):
    path, marker = malicious
    model = ColBERT(random_config=TINY, dim=16, doc_length=16)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.ckpt: refused to load.*posix\.system"):
        if load is None:
            load_model_weights(model, path)
        else:
            load(path)
    assert not marker.exists()


def test_colcompress_checkpoint_loads_with_weights_only(tmp_path: Path):
    torch.manual_seed(0)
    trained = ColBERT(random_config=TINY, dim=16, doc_length=16)
    stored = {"model": {"dim": 16}, "compressor": {"_target_": "x"}}
    path = tmp_path / "good.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
            "colcompress_model_config": stored,
            "global_step": 2,
        },
        path,
    )
    torch.manual_seed(1)
    fresh = load_model_weights(ColBERT(random_config=TINY, dim=16, doc_length=16), path)
    for name, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name
    assert model_config(path) == stored


def test_fresh_compressor_starts_from_a_plain_checkpoint(tmp_path: Path, caplog):
    from colcompress.compressors.memtok import MemTok

    torch.manual_seed(0)
    plain = ColBERT(random_config=TINY, dim=16, doc_length=16)
    path = tmp_path / "plain.ckpt"
    state = {f"model.{k}": v for k, v in plain.state_dict().items()}
    torch.save({"state_dict": state, "colcompress_model_config": {}}, path)
    torch.manual_seed(1)
    memtok = ColBERT(random_config=TINY, dim=16, doc_length=16, compressor=MemTok(4, 32))
    memory = memtok.compressor.memory.detach().clone()
    with pytest.raises(ValueError, match=r"no weights for the compressor's parameters"):
        load_model_weights(memtok, path)  # evaluation needs trained memory tokens
    with caplog.at_level("INFO", logger="colcompress.checkpoint"):
        load_model_weights(memtok, path, fresh_compressor=True)
    for name, value in plain.state_dict().items():
        assert torch.equal(memtok.state_dict()[name], value), name
    assert torch.equal(memtok.compressor.memory, memory)  # kept its initialisation
    assert "encoder and projection loaded; MemTok parameters ['compressor.memory']" in caplog.text


def test_missing_checkpoint_names_the_path(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        model_config(tmp_path / "nope.ckpt")
