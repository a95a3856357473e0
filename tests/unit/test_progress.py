"""The ``progress`` option: resolved once, and every long step draws a tqdm bar with
it on and none with it off."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from colcompress.data.download import ensure_beir
from colcompress.evaluation.baselines import evaluate_baselines
from colcompress.evaluation.encode import encode
from colcompress.index.flat import FlatIndex
from colcompress.models.colbert import ColBERT
from colcompress.progress import resolve_progress
from tests.conftest import ROOT
from tests.unit.test_baselines import _data
from tests.unit.test_checkpoint import TINY
from tests.unit.test_data_download import served  # noqa: F401  (fixture)
from tests.unit.test_index import clustered


def test_auto_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch):
    assert resolve_progress(True) is True and resolve_progress(False) is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # what CI logs are: not a TTY
    assert resolve_progress("auto") is False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert resolve_progress("auto") is True
    with pytest.raises(ValueError, match="progress='yes': expected true, false or auto"):
        resolve_progress("yes")


def _bars(capsys: pytest.CaptureFixture[str], step: Callable[[bool], object]) -> tuple[str, str]:
    """stderr of ``step(True)`` and of ``step(False)``."""
    capsys.readouterr()
    step(True)
    on = capsys.readouterr().err
    step(False)
    return on, capsys.readouterr().err


def _is_bar(text: str, label: str) -> bool:
    """A finished tqdm bar labelled ``label`` (100%, elapsed<remaining)."""
    return any(label in line and "100%|" in line and "<" in line for line in text.split("\r"))


def test_encoding_draws_a_bar(capsys: pytest.CaptureFixture[str]):
    model = ColBERT(random_config=TINY, dim=16, doc_length=16)
    texts = ["a short text", "another slightly longer text here", "x"] * 3
    on, off = _bars(capsys, lambda p: encode(model, texts, False, 4, desc="corpus", progress=p))
    assert _is_bar(on, "corpus") and "doc" in on
    assert off == ""


def test_searching_draws_a_bar(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    docs, queries = clustered(64, 8, 16, 5, noise=0.1)
    ids = [f"d{i}" for i in range(64)]
    flat = [FlatIndex(progress=p) for p in (True, False)]
    for index in flat:
        index.build(docs, ids)
    on, off = _bars(capsys, lambda p: flat[1 - p].search(queries, 3))
    assert _is_bar(on, "search") and off == ""


FASTPLAID_SEARCH = """
import sys
from colcompress.index.fastplaid import FastPlaidIndex
from tests.unit.test_index import clustered
docs, queries = clustered(64, 8, 16, 5, noise=0.1)
for progress in (True, False):
    index = FastPlaidIndex(sys.argv[1] + str(progress), progress=progress)
    index.build(docs, [f"d{i}" for i in range(64)])
    index.search(queries, 3)
    print("searched", file=sys.stderr, flush=True)
"""


def test_fastplaid_draws_its_own_bar_on_a_terminal(tmp_path: Path):
    """fast-plaid's (Rust) bars write to the stderr file descriptor, only on a terminal;
    its build bar has no switch, its search bar follows ``progress``."""
    master, terminal = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", FASTPLAID_SEARCH, str(tmp_path / "index")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks)[-2000:]
    on, off, _ = b"".join(chunks).decode().split("searched")
    assert "1/1" in on and "5/5" in on  # build (always drawn on a terminal), 5 queries
    assert "1/1" in off and "5/5" not in off  # the search bar follows the option


def test_baselines_draw_bars(capsys: pytest.CaptureFixture[str]):
    data = _data()
    on, off = _bars(
        capsys,
        lambda p: evaluate_baselines(
            data, backbone="tiny", names=["bm25"], top_k=3, metrics=["ndcg@10"], progress=p
        ),
    )
    assert _is_bar(on, "bm25 search") and off == ""


def test_download_draws_a_bar(
    capsys: pytest.CaptureFixture[str],
    served: tuple[Path, str],  # noqa: F811
    tmp_path: Path,
):
    www, base = served
    with zipfile.ZipFile(www / "toy.zip", "w") as zf:
        zf.writestr("toy/corpus.jsonl", '{"_id": "d1", "text": "x"}\n' * 1000)

    def download(progress: bool) -> None:
        ensure_beir("toy", tmp_path / str(progress), url=f"{base}/toy.zip", progress=progress)

    on, off = _bars(capsys, download)
    assert _is_bar(on, "download toy") and off == ""


def test_tokens_per_item_do_not_depend_on_the_bar():
    model = ColBERT(random_config=TINY, dim=16, doc_length=16)
    texts = ["one two three", "four"]
    a, b = (encode(model, texts, False, 1, progress=p) for p in (True, False))
    assert torch.equal(a.tokens, b.tokens)
    assert all(torch.equal(x, y) for x, y in zip(a.vectors, b.vectors))
