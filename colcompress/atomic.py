"""Atomic file writes: a half-written artefact never replaces a good one.

Temporary files and directories made here get the permissions an ordinary ``open``
or ``mkdir`` would (``0o666`` / ``0o777`` less the process umask), not the ``0o600``
/ ``0o700`` of :mod:`tempfile`, so renamed artefacts can be shared as the umask says.

Their names are hidden and recognisable (:data:`TEMP_NAME`): ``.<target>.<random>``
plus ``.tmp``, ``.png``, ``.zip.part`` or ``.extract``, or
``.<target>.tmp-<random>`` / ``.<target>.old-<random>`` for directories swapped into
place. A killed process leaves them behind; :func:`remove_stale_temporaries` deletes
those older than a given time.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_UMASK_LOCK = threading.Lock()
_RANDOM = r"[a-z0-9_]{8}"  # the random part tempfile puts in a name
TEMP_NAME = re.compile(
    rf"^\..+\.{_RANDOM}(\.tmp|\.png|\.zip\.part|\.extract)$|^\..+\.(tmp|old)-{_RANDOM}$"
)


def umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def make_temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """Create a uniquely named directory in ``parent`` with umask-following permissions.

    Parameters
    ----------
    parent : path
        Existing directory to create it in.
    prefix, suffix : str
        Name parts around the random middle (as :func:`tempfile.mkdtemp`).

    Returns
    -------
    Path
        The new, empty directory (mode ``0o777 & ~umask``).
    """
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix, suffix=suffix))
    path.chmod(0o777 & ~umask())
    return path


def make_temp_file(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """Create a uniquely named empty file in ``parent`` with mode ``0o666 & ~umask``."""
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~umask())
    finally:
        os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a uniquely named temporary path next to ``path``; rename it onto ``path``
    when the block succeeds, delete it when the block fails.

    The unique name lets concurrent writers (sweep jobs sharing a cache) race safely:
    the last rename wins and every reader sees one complete file. The file has the
    permissions the umask gives a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``path``; rename it onto ``path`` when
    the block succeeds, delete it when the block fails.

    Parameters
    ----------
    path : path
        The directory to create.
    replace : bool
        Replace an existing ``path``: the old directory is renamed aside, the new one
        renamed into place, then the old one deleted (or moved back if that rename
        fails). Without it an existing ``path`` raises before anything is written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``replace`` is false.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise FileExistsError(f"{path} exists; remove it or ask to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(path.parent, prefix=f".{path.name}.tmp-")
    try:
        yield staging
        swap_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_into_place(new_dir: Path, target: Path) -> None:
    """Rename the finished folder ``new_dir`` onto ``target``, replacing any old one.

    The old ``target`` is first renamed aside and deleted only once ``new_dir`` is in
    place; if the final rename fails the old one is moved back.
    """
    if not target.exists() and not target.is_symlink():
        os.rename(new_dir, target)
        return
    old = make_temp_dir(target.parent, prefix=f".{target.name}.old-")
    try:
        os.rename(target, old / target.name)
    except BaseException:
        old.rmdir()
        raise
    try:
        os.rename(new_dir, target)
    except BaseException:
        os.rename(old / target.name, target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _newest_mtime(path: Path) -> float:
    """Last modification of ``path`` or, for a directory, of anything inside it."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for sub in path.rglob("*"):
            newest = max(newest, sub.lstat().st_mtime)
    return newest


def remove_stale_temporaries(
    roots: list[str | os.PathLike], older_than: float, max_depth: int = 6
) -> list[Path]:
    """Delete the temporary files and directories (:data:`TEMP_NAME`) killed runs left.

    Parameters
    ----------
    roots : list of path
        Folders searched (missing ones are skipped): logs, caches, data.
    older_than : float
        A POSIX time; only temporaries last modified before it (a directory: nothing
        inside it modified since) are deleted, so those of live writers stay.
    max_depth : int
        Folder levels searched below each root.

    Returns
    -------
    list of Path
        What was deleted.
    """
    removed: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            depth = len(Path(folder).relative_to(root).parts)
            if depth >= max_depth:
                dirs.clear()
            for name in [*dirs, *files]:
                path = Path(folder) / name
                try:
                    if not TEMP_NAME.match(name) or _newest_mtime(path) >= older_than:
                        continue
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                except FileNotFoundError:  # removed meanwhile (its writer finished)
                    continue
                removed.append(path)
            dirs[:] = [d for d in dirs if Path(folder, d) not in removed]
    for path in removed:
        log.info("removed %s, a temporary left by a killed run", path)
    return removed
