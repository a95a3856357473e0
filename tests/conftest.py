"""Shared fixtures: keep every run offline and inside pytest's temporary folders.

Tests that read the BEIR datasets (the ``beir_dir`` or ``tiny_sweep`` fixtures, or marked
``data``) are skipped, saying why, when NFCorpus is not in ``COLCOMPRESS_DATA_DIR``
(default ``../shared/data/beir``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import colcompress.resolvers  # noqa: F401  (the resolvers the configs use, for tests composing them)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "colcompress" / "conf"  # the Hydra configs
SHARED_BEIR = ROOT.parent / "shared" / "data" / "beir"
DATA_DIR = Path(os.environ.get("COLCOMPRESS_DATA_DIR", SHARED_BEIR))
HAS_DATA = (DATA_DIR / "nfcorpus" / "corpus.jsonl").exists()
DATA_FIXTURES = {"beir_dir", "tiny_sweep"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need the datasets ``data``; skip them when they are absent."""
    skip = pytest.mark.skip(
        reason=f"needs the BEIR datasets: no {DATA_DIR}/nfcorpus (set COLCOMPRESS_DATA_DIR)"
    )
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)
        if not HAS_DATA and item.get_closest_marker("data"):
            item.add_marker(skip)


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
    return DATA_DIR
