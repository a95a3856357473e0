"""Shared fixtures: keep every run offline and inside pytest's temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import colcompress.resolvers  # noqa: F401  (the resolvers conf/ uses, for tests composing it)

ROOT = Path(__file__).resolve().parents[1]
SHARED_BEIR = ROOT.parent / "shared" / "data" / "beir"
DATA_DIR = Path(os.environ.get("COLCOMPRESS_DATA_DIR", SHARED_BEIR))


@pytest.fixture(autouse=True)
def _offline_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(base / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MPLCONFIGDIR", str(base / "mpl"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def beir_dir() -> Path:
    """The folder of BEIR datasets (../shared/data/beir or COLCOMPRESS_DATA_DIR)."""
    if not (DATA_DIR / "nfcorpus" / "corpus.jsonl").exists():
        pytest.fail(f"NFCorpus not found under {DATA_DIR}: set COLCOMPRESS_DATA_DIR")
    return DATA_DIR
