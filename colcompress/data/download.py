"""Fetch BEIR archives: download, verify the md5, extract safely, rename into place.

Nothing partial is ever left under the data directory: the archive is written to a
temporary file, extracted into a temporary directory, and only the finished dataset
directory is renamed to ``data_dir/<name>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from colcompress.atomic import make_temp_dir, make_temp_file
from colcompress.data.collections import BEIR_COLLECTIONS

__all__ = [
    "ChecksumError",
    "DownloadError",
    "ArchiveTooLargeError",
    "MAX_EXTRACT_BYTES",
    "UnsafeArchiveError",
    "ensure_beir",
    "file_md5",
]

_CHUNK = 1 << 20
MAX_EXTRACT_BYTES = 64 * 2**30  # the largest public BEIR archive extracts to well under this


class DownloadError(RuntimeError):
    """A dataset archive could not be fetched or unpacked."""


class ChecksumError(DownloadError):
    """An archive's md5 differs from the expected one."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target directory, or is a link."""


class ArchiveTooLargeError(DownloadError):
    """An archive would extract to more bytes than the cap allows."""


def file_md5(path: str | Path) -> str:
    """Return the hex md5 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, md5: str | None, source: str) -> None:
    if md5 is None:
        return
    actual = file_md5(path)
    if actual.lower() != md5.lower():
        raise ChecksumError(f"{source}: md5 mismatch, expected {md5.lower()}, got {actual}")


def _download(url: str, dest_dir: Path, name: str, timeout: float, progress: bool) -> Path:
    """Stream ``url`` into a new temporary file in ``dest_dir`` and return its path.

    ``progress`` draws a tqdm bar of the bytes received (with ETA when the server
    sends Content-Length).
    """
    tmp = make_temp_file(dest_dir, prefix=f".{name}.", suffix=".zip.part")
    try:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            with tqdm.wrapattr(
                out,
                "write",
                total=int(length) if length else None,
                desc=f"download {name}",
                disable=not progress,
            ) as sink:
                shutil.copyfileobj(resp, sink, _CHUNK)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, (urllib.error.URLError, OSError)):
            raise DownloadError(f"downloading {url} failed: {exc}") from exc
        raise
    return tmp


def _check_members(archive: zipfile.ZipFile, target: Path, source: str) -> None:
    """Refuse absolute paths, members escaping ``target``, and symlinks."""
    root = target.resolve()
    for info in archive.infolist():
        member = info.filename
        posix = PurePosixPath(member.replace("\\", "/"))
        if posix.is_absolute() or (len(member) > 1 and member[1] == ":"):
            raise UnsafeArchiveError(f"{source}: refusing absolute member path {member!r}")
        resolved = (root / posix).resolve()
        if ".." in posix.parts or (resolved != root and root not in resolved.parents):
            raise UnsafeArchiveError(
                f"{source}: refusing member {member!r}, it would extract outside {target}"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(f"{source}: refusing symbolic link member {member!r}")


def _check_size(archive: zipfile.ZipFile, source: str, max_bytes: int) -> None:
    """Refuse an archive whose members declare more than ``max_bytes`` in all.

    ``zipfile`` never inflates a member past its declared size (it stops there and
    the CRC check fails), so the declared total bounds what extraction writes.
    """
    declared = sum(info.file_size for info in archive.infolist())
    if declared > max_bytes:
        raise ArchiveTooLargeError(
            f"{source}: extracts to {declared} bytes, above the cap of {max_bytes} bytes "
            "(ensure_beir(max_bytes=...))"
        )


def _dataset_root(extracted: Path, name: str, source: str) -> Path:
    """Find the directory holding ``corpus.jsonl`` in an extracted archive.

    BEIR archives hold one top folder named after the collection; an archive whose
    top folder is another name is another collection and is refused. An archive
    with ``corpus.jsonl`` at its top level (no folder) is accepted.
    """
    for candidate in (extracted / name, extracted):
        if (candidate / "corpus.jsonl").is_file():
            return candidate
    others = sorted(p.name for p in extracted.iterdir() if (p / "corpus.jsonl").is_file())
    if others:
        raise DownloadError(
            f"{source}: the archive holds collection folder {others[0]!r}, not {name!r}: "
            f"it is not the {name} collection (check dataset.name and dataset.url)"
        )
    raise DownloadError(
        f"{source}: no corpus.jsonl in the archive; expected {name}/corpus.jsonl "
        "(BEIR layout) or corpus.jsonl at its top level"
    )


def _install(zip_path: Path, target: Path, name: str, source: str, max_bytes: int) -> None:
    """Extract ``zip_path`` next to ``target`` and rename the dataset into place."""
    tmp_dir = make_temp_dir(target.parent, prefix=f".{name}.", suffix=".extract")
    extracted = tmp_dir / "archive"
    try:
        extracted.mkdir()
        try:
            archive = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{source}: not a valid zip archive ({exc})") from exc
        with archive:
            _check_members(archive, extracted, source)
            _check_size(archive, source, max_bytes)
            try:
                archive.extractall(extracted)
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise DownloadError(f"{source}: corrupt zip archive ({exc})") from exc
        root = _dataset_root(extracted, name, source)
        try:
            os.rename(root, target)
        except OSError:
            if not (target / "corpus.jsonl").is_file():  # not a concurrent winner
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def ensure_beir(
    name: str,
    data_dir: str | Path,
    url: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
    max_bytes: int = MAX_EXTRACT_BYTES,
    progress: bool = False,
) -> Path:
    """Return the directory of a BEIR dataset, downloading it when missing.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"nfcorpus"``; the directory is ``data_dir/name``.
    data_dir : str or Path
        Folder holding datasets (created if missing).
    url : str or None
        Archive URL; ``None`` means the official URL of the BEIR collection ``name``
        (:data:`~colcompress.data.collections.BEIR_COLLECTIONS`), with its md5.
    md5 : str or None
        Expected md5 of the archive; ``None`` skips the check (unless the URL is
        taken from the table).
    timeout : float
        Socket timeout of the download in seconds.
    max_bytes : int
        Most bytes the archive may extract to.
    progress : bool
        Draw a download progress bar.

    Returns
    -------
    Path
        ``data_dir/name``, holding ``corpus.jsonl``.

    Raises
    ------
    ChecksumError
        The archive's md5 differs from ``md5`` (message gives both).
    UnsafeArchiveError
        An archive member is absolute, escapes the target or is a symlink.
    ArchiveTooLargeError
        The archive's members add up to more than ``max_bytes`` bytes.
    DownloadError
        The download failed, the archive is not a zip, holds no ``corpus.jsonl`` or
        holds another collection's folder, ``data_dir/name`` exists without
        ``corpus.jsonl``, or there is no URL for ``name``.

    Notes
    -----
    An archive already present as ``data_dir/name.zip`` is used (and checked against
    ``md5``) instead of downloading; it is left in place. A downloaded archive is
    deleted after extraction. On any failure nothing new remains under ``data_dir``.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"dataset name must be a plain directory name, got {name!r}")
    data_dir = Path(data_dir)
    target = data_dir / name
    if (target / "corpus.jsonl").is_file():
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(
            f"{target} exists but holds no corpus.jsonl; remove it to download {name!r}"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    local_zip = data_dir / f"{name}.zip"
    if local_zip.is_file():
        _verify(local_zip, md5, str(local_zip))
        _install(local_zip, target, name, str(local_zip), max_bytes)
        return target
    if url is None:
        known = BEIR_COLLECTIONS.get(name)
        if known is None:
            raise DownloadError(
                f"{target}: missing, and {name!r} is not a BEIR collection name "
                f"({', '.join(BEIR_COLLECTIONS)}): give dataset.url, or use "
                "dataset=local dataset.path=<folder>"
            )
        url, md5 = known.url, md5 or known.md5
    tmp_zip = _download(url, data_dir, name, timeout, progress)
    try:
        _verify(tmp_zip, md5, url)
        _install(tmp_zip, target, name, url, max_bytes)
    finally:
        tmp_zip.unlink(missing_ok=True)
    return target
