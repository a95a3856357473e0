"""The on-disk vector store: exact float16 round trip, atomic chunks, a manifest last."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from colcompress.index.store import MANIFEST, VectorStore, VectorStoreWriter
from tests.conftest import ROOT


def documents(n: int, dim: int = 8, seed: int = 0) -> tuple[list[Tensor], list[str]]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 6, (n,), generator=gen).tolist()
    return [torch.randn(m, dim, generator=gen) for m in lengths], [f"d{i}" for i in range(n)]


def write(path: Path, docs: list[Tensor], ids: list[str], chunk: int) -> VectorStore:
    writer = VectorStoreWriter(path)
    for start in range(0, len(docs), chunk):
        writer.add(docs[start : start + chunk], ids[start : start + chunk])
    return writer.finish()


def test_round_trip_is_the_float16_rounding(tmp_path: Path):
    docs, ids = documents(11)
    store = write(tmp_path / "store", docs, ids, chunk=4)
    reopened = VectorStore.open(tmp_path / "store")
    for s in (store, reopened):
        assert s.ids == ids and len(s) == 11 and s.num_chunks == 3 and s.dim == 8
        assert s.lengths.tolist() == [d.shape[0] for d in docs]
        assert s.num_vectors == sum(d.shape[0] for d in docs)
        for i in (0, 5, 10, -1):  # random access, across chunks, from the end
            assert s[i].dtype == torch.float32
            assert torch.equal(s[i], docs[i].half().float())
        assert all(torch.equal(a, d.half().float()) for a, d in zip(s, docs, strict=True))
    assert [list(store.chunk_range(c)) for c in range(3)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10],
    ]
    views = store.chunk(1)
    assert [v.dtype for v in views] == [torch.float16] * 4
    assert all(torch.equal(v, d.half()) for v, d in zip(views, docs[4:8], strict=True))
    gathered = store.gather([9, 0, 5, 9])
    assert all(torch.equal(g, docs[i].half()) for g, i in zip(gathered, [9, 0, 5, 9], strict=True))
    assert store.size_bytes() == sum(f.stat().st_size for f in (tmp_path / "store").iterdir())
    with pytest.raises(IndexError, match="out of range"):
        store[11]


def test_writer_refuses_bad_chunks(tmp_path: Path):
    docs, ids = documents(4)
    writer = VectorStoreWriter(tmp_path / "store")
    writer.add(docs[:2], ids[:2])
    with pytest.raises(ValueError, match="'d1' is already in chunk 0"):
        writer.add(docs[2:], ["d1", "d3"])
    with pytest.raises(ValueError, match="D=5; earlier chunks have D=8"):
        writer.add([torch.randn(2, 5)], ["x"])
    with pytest.raises(ValueError, match="0 vectors"):
        writer.add([torch.randn(0, 8)], ["y"])
    with pytest.raises(ValueError, match="no chunk written"):
        VectorStoreWriter(tmp_path / "empty").finish()


def test_unfinished_store_has_no_manifest_and_is_refused(tmp_path: Path):
    docs, ids = documents(6)
    writer = VectorStoreWriter(tmp_path / "store")
    writer.add(docs[:3], ids[:3])  # never finished: what a crash after one chunk leaves
    assert not (tmp_path / "store" / MANIFEST).exists()
    with pytest.raises(FileNotFoundError, match=r"store/manifest\.json not found.*interrupted"):
        VectorStore.open(tmp_path / "store")


def test_killed_writer_leaves_nothing_to_read(tmp_path: Path):
    """SIGKILL between chunks: chunk files, no manifest; a rewrite replaces them."""
    store = tmp_path / "store"
    write(store, *documents(4, seed=1), chunk=2)  # an old, finished store in the folder
    script = (
        "import os, signal, torch\n"
        "from colcompress.index.store import VectorStoreWriter\n"
        f"w = VectorStoreWriter({str(store)!r})\n"
        "w.add([torch.ones(2, 8)], ['a'])\n"
        "w.add([torch.ones(3, 8)], ['b'])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in store.iterdir()) == ["chunk-00000.npy", "chunk-00001.npy"]
    with pytest.raises(FileNotFoundError, match="manifest"):
        VectorStore.open(store)
    docs, ids = documents(3, seed=2)
    assert write(store, docs, ids, chunk=3).ids == ids
    assert sorted(p.name for p in store.iterdir()) == ["chunk-00000.npy", MANIFEST]


def test_failed_chunk_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    docs, ids = documents(4)
    writer = VectorStoreWriter(tmp_path / "store")
    writer.add(docs[:2], ids[:2])

    def broken_save(f, array):  # writes half, then fails (a full disk)
        f.write(b"\x93NUMPY")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        writer.add(docs[2:], ids[2:])
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["chunk-00000.npy"]


def test_bad_manifests_are_named(tmp_path: Path):
    store = tmp_path / "store"
    write(store, *documents(5), chunk=3)
    manifest_path = store / MANIFEST
    good = json.loads(manifest_path.read_text())

    def reopen_with(text: str) -> str:
        manifest_path.write_text(text)
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            VectorStore.open(store)
        assert str(manifest_path) in str(info.value)
        return str(info.value)

    assert "not a valid manifest" in reopen_with("{ truncated")
    no_chunks = {k: v for k, v in good.items() if k != "chunks"}
    assert "missing key 'chunks'" in reopen_with(json.dumps(no_chunks))
    assert "format" in reopen_with(json.dumps({**good, "format": "other"}))
    first, second = good["chunks"]
    wrong_rows = {**good, "chunks": [{**first, "lengths": [1, 1, 1]}, second]}
    assert "chunk-00000.npy holds float16" in reopen_with(json.dumps(wrong_rows))
    extra = {"file": "chunk-00009.npy", "ids": ["z"], "lengths": [1]}
    missing = {**good, "chunks": [first, second, extra]}
    assert "chunk-00009.npy, listed in" in reopen_with(json.dumps(missing))
    twice = {**good, "chunks": [first, {**second, "ids": ["d0", "d4"]}]}
    assert "lists a document id twice" in reopen_with(json.dumps(twice))
