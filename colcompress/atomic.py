"""Atomic file writes: a half-written artefact never replaces a good one.

Temporary files and directories made here get the permissions an ordinary ``open``
or ``mkdir`` would (``0o666`` / ``0o777`` less the process umask), not the ``0o600``
/ ``0o700`` of :mod:`tempfile`, so renamed artefacts can be shared as the umask says.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK_LOCK = threading.Lock()


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


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
