"""ensure_beir: checksum-verified download from a local HTTP server, safe extraction,
nothing partial left behind on failure."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from colcompress.data.beir import load_beir
from colcompress.data.collections import SourceMismatchError
from colcompress.data.datamodule import RetrievalDataModule
from colcompress.data.download import (
    ArchiveTooLargeError,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    ensure_beir,
    file_md5,
)

NFCORPUS_MD5 = "a89dba18a62ef92f7d323ec890a0d38d"
DEAD_URL = "http://127.0.0.1:9/never-contacted.zip"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (random port), and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def tree(path: Path) -> list[str]:
    """Every path under ``path`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def corrupt_copy(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))


def evil_zip(path: Path, kind: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("nfcorpus/corpus.jsonl", '{"_id": "d1", "text": "x"}\n')
        if kind == "symlink":
            info = zipfile.ZipInfo("nfcorpus/link")
            info.external_attr = (0o120777 << 16) | 0
            zf.writestr(info, "/etc/passwd")
        else:
            member = {"parent": "../evil", "deep": "nfcorpus/../../evil", "absolute": "/tmp/evil"}
            zf.writestr(member[kind], "owned")


def test_download_checksum_accepted_and_loadable(
    beir_dir: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    www, base = served
    shutil.copy(beir_dir / "nfcorpus.zip", www / "nfcorpus.zip")
    data_dir = tmp_path / "data"
    path = ensure_beir("nfcorpus", data_dir, url=f"{base}/nfcorpus.zip", md5=NFCORPUS_MD5)
    assert path == data_dir / "nfcorpus"
    assert len(load_beir(path, "test").corpus) == 3633
    assert tree(data_dir)[:2] == ["nfcorpus", "nfcorpus/corpus.jsonl"]
    assert [p.name for p in data_dir.iterdir()] == ["nfcorpus"]  # temp zip and dir gone
    # present: returned without touching the network
    assert ensure_beir("nfcorpus", data_dir, url=DEAD_URL, md5="0" * 32) == path


def test_corrupted_download_rejected_nothing_left(
    beir_dir: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    www, base = served
    corrupt_copy(beir_dir / "nfcorpus.zip", www / "nfcorpus.zip")
    actual = file_md5(www / "nfcorpus.zip")
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"expected {NFCORPUS_MD5}, got {actual}"):
        ensure_beir("nfcorpus", data_dir, url=f"{base}/nfcorpus.zip", md5=NFCORPUS_MD5)
    assert tree(data_dir) == []
    # without a checksum the damage is caught by the zip CRCs, still leaving nothing
    with pytest.raises(DownloadError, match="corrupt zip archive"):
        ensure_beir("nfcorpus", data_dir, url=f"{base}/nfcorpus.zip")
    assert tree(data_dir) == []


def test_http_error_leaves_nothing(served: tuple[Path, str], tmp_path: Path) -> None:
    _, base = served
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"downloading .*/missing\.zip failed: HTTP Error 404"):
        ensure_beir("missing", data_dir, url=f"{base}/missing.zip")
    assert tree(data_dir) == []


def test_evil_member_over_http_refused(served: tuple[Path, str], tmp_path: Path) -> None:
    www, base = served
    evil_zip(www / "nfcorpus.zip", "parent")
    data_dir = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil'"):
        ensure_beir("nfcorpus", data_dir, url=f"{base}/nfcorpus.zip")
    assert tree(data_dir) == []
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", ["parent", "deep", "absolute", "symlink"])
def test_unsafe_local_zip_refused(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "a" / "data"
    data_dir.mkdir(parents=True)
    evil_zip(data_dir / "nfcorpus.zip", kind)
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        ensure_beir("nfcorpus", data_dir, url=DEAD_URL)
    assert tree(tmp_path) == ["a", "a/data", "a/data/nfcorpus.zip"]  # the user's zip stays


def test_local_zip_used_and_verified(beir_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(beir_dir / "nfcorpus.zip", data_dir / "nfcorpus.zip")
    with pytest.raises(ChecksumError, match=rf"nfcorpus\.zip: md5 mismatch, expected {'1' * 32}"):
        ensure_beir("nfcorpus", data_dir, url=DEAD_URL, md5="1" * 32)
    assert tree(data_dir) == ["nfcorpus.zip"]
    path = ensure_beir("nfcorpus", data_dir, url=DEAD_URL, md5=NFCORPUS_MD5)
    assert (path / "qrels" / "test.tsv").is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == ["nfcorpus", "nfcorpus.zip"]


def test_archive_without_corpus_and_stale_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with zipfile.ZipFile(data_dir / "odd.zip", "w") as zf:
        zf.writestr("odd/readme.txt", "no corpus here")
    with pytest.raises(DownloadError, match=r"no corpus\.jsonl in the archive"):
        ensure_beir("odd", data_dir, url=DEAD_URL)
    assert tree(data_dir) == ["odd.zip"]
    (data_dir / "stale").mkdir()
    (data_dir / "stale" / "queries.jsonl").write_text("")
    with pytest.raises(DownloadError, match="exists but holds no corpus.jsonl"):
        ensure_beir("stale", data_dir, url=DEAD_URL)
    with pytest.raises(ValueError, match="plain directory name"):
        ensure_beir("../up", data_dir)


def test_flat_archive_layout(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with zipfile.ZipFile(data_dir / "flat.zip", "w") as zf:
        zf.writestr("corpus.jsonl", '{"_id": "d1", "text": "x"}\n')
        zf.writestr("queries.jsonl", '{"_id": "q1", "text": "x"}\n')
        zf.writestr("qrels/test.tsv", "q1\td1\t1\n")
    path = ensure_beir("flat", data_dir, url=DEAD_URL)
    assert load_beir(path, "test").qrels == {"q1": {"d1": 1}}
    assert path.stat().st_mode & 0o755 == 0o755  # not the 0700 of a temp dir
    assert tree(data_dir) == [
        "flat",
        "flat.zip",
        "flat/corpus.jsonl",
        "flat/qrels",
        "flat/qrels/test.tsv",
        "flat/queries.jsonl",
    ]


def test_archive_above_the_extraction_cap_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with zipfile.ZipFile(data_dir / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/corpus.jsonl", b" " * 2**20)  # 1 MiB of spaces, ~1 KiB compressed
        zf.writestr("bomb/queries.jsonl", b"")
    assert (data_dir / "bomb.zip").stat().st_size < 4096
    with pytest.raises(
        ArchiveTooLargeError,
        match=rf"bomb\.zip: extracts to {2**20} bytes, above the cap of 100000 bytes",
    ):
        ensure_beir("bomb", data_dir, url=DEAD_URL, max_bytes=100_000)
    assert tree(data_dir) == ["bomb.zip"]
    assert (ensure_beir("bomb", data_dir, url=DEAD_URL, max_bytes=2**20) / "corpus.jsonl").is_file()


def test_an_archive_of_another_collection_is_refused(
    beir_dir: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    """NFCorpus's archive served under another name: refused by the name table before
    any download, or by its top folder after; nothing is left in the data folder."""
    www, base = served
    shutil.copy(beir_dir / "nfcorpus.zip", www / "fiqa.zip")
    data_dir = tmp_path / "data"
    module = RetrievalDataModule(name="fiqa", data_dir=str(data_dir), url=f"{base}/fiqa.zip")
    with pytest.raises(SourceMismatchError, match="fiqa is downloaded from"):
        module.prepare_data()
    module = RetrievalDataModule(name="mine", data_dir=str(data_dir), url=f"{base}/fiqa.zip")
    with pytest.raises(DownloadError, match="holds collection folder 'nfcorpus', not 'mine'"):
        module.prepare_data()
    assert not data_dir.exists() or tree(data_dir) == []
    module = RetrievalDataModule(name="mine", data_dir=str(data_dir))
    with pytest.raises(DownloadError, match="'mine' is not a BEIR collection name"):
        module.prepare_data()
    assert tree(data_dir) == []
