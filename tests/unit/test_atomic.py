"""Atomic writes: permissions follow the umask, failures leave nothing behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from colcompress.atomic import atomic_path, make_temp_dir, umask, write_text_atomic
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
