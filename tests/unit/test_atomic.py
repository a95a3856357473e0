"""Atomic writes: permissions follow the umask, failures leave nothing behind."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from colcompress.atomic import (
    TEMP_NAME,
    atomic_dir,
    atomic_path,
    make_temp_dir,
    make_temp_file,
    remove_stale_temporaries,
    umask,
    write_text_atomic,
)
from colcompress.evaluation.metrics import write_trec_run
from colcompress.index.fastplaid import FastPlaidIndex


@pytest.fixture(params=[0o022, 0o002, 0o077])
def process_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_reads_without_changing_it(process_umask):
    assert umask() == process_umask
    assert umask() == process_umask


def test_atomic_files_get_the_umask_mode(tmp_path, process_umask):
    results = write_text_atomic("{}", tmp_path / "results.json")
    write_trec_run({"q": {"d": 1.0}}, tmp_path / "run.trec")
    assert _mode(results) == 0o666 & ~process_umask
    assert _mode(tmp_path / "run.trec") == 0o666 & ~process_umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "run.trec"]


def test_temp_dirs_get_the_umask_mode(tmp_path, process_umask):
    assert _mode(make_temp_dir(tmp_path, prefix=".x.")) == 0o777 & ~process_umask


def test_fastplaid_index_dir_gets_the_umask_mode(tmp_path):
    old = os.umask(0o002)  # a group-shared results folder
    try:
        index = FastPlaidIndex(tmp_path / "index", nbits=2)
        docs = [torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)] * 3
        index.build(docs, ["a", "b", "c"])
    finally:
        os.umask(old)
    assert _mode(index.index_dir) == 0o775


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = write_text_atomic("good", tmp_path / "a.txt")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def _age(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    for sub in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(sub, (when, when))
    return path


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path):
    """Every kind of temporary colcompress makes, created by the real helpers."""
    logs, cache, data = tmp_path / "logs", tmp_path / "cache", tmp_path / "data"
    run_dir = logs / "train" / "runs" / "2026-01-01_00-00-00"
    for folder in (run_dir, cache / "baselines", data):
        folder.mkdir(parents=True)
    stale = [
        make_temp_file(run_dir, prefix=".results.json.", suffix=".tmp"),
        make_temp_file(run_dir, prefix=".utilization_strength.png.", suffix=".png"),
        make_temp_file(cache / "baselines", prefix=".toy-test-0123.json.", suffix=".tmp"),
        make_temp_file(data, prefix=".scifact.", suffix=".zip.part"),
        make_temp_dir(data, prefix=".scifact.", suffix=".extract"),
        make_temp_dir(run_dir, prefix=".index.tmp-"),
        make_temp_dir(run_dir, prefix=".index.old-"),
    ]
    (stale[-2] / "chunk.npy").write_bytes(b"x")
    live = make_temp_dir(run_dir, prefix=".index.tmp-")  # a concurrent run still writing
    (live / "chunk.npy").write_bytes(b"x")
    _age(live, 7200)
    _age(live / "chunk.npy", 0)
    kept = [
        (run_dir / "results.json", 7200),
        (run_dir / ".hydra", 7200),
        (data / ".scifact.zip", 7200),  # hidden, but not one of our temporary names
        (make_temp_file(run_dir, prefix=".run.trec.", suffix=".tmp"), 10),  # too recent
    ]
    (run_dir / "results.json").write_text("{}")
    (run_dir / ".hydra").mkdir()
    (data / ".scifact.zip").write_bytes(b"")
    for path in stale:
        _age(path, 7200)
    for path, age in kept:
        _age(path, age)
    removed = remove_stale_temporaries([logs, cache, data, tmp_path / "absent"], time.time() - 3600)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert live.is_dir() and all(p.exists() for p, _ in kept)


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "collection"
    with atomic_dir(target) as staging:
        assert TEMP_NAME.match(staging.name) and not target.exists()
        (staging / "corpus.jsonl").write_text("{}\n")
    assert (target / "corpus.jsonl").read_text() == "{}\n"
    with pytest.raises(FileExistsError, match="collection exists"):
        with atomic_dir(target):
            pass
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_dir(target, replace=True) as staging:
            (staging / "corpus.jsonl").write_text("partial")
            raise RuntimeError("half-way")
    assert (target / "corpus.jsonl").read_text() == "{}\n"  # the old one untouched
    with atomic_dir(target, replace=True) as staging:
        (staging / "queries.jsonl").write_text("")
    assert sorted(p.name for p in target.iterdir()) == ["queries.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["collection"]  # no temporaries left
