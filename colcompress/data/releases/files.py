"""The text files of a release: tables with a header, JSONL, TREC judgments.

Every reader yields the 1-based line of each record, and every error names the file,
the line and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from colcompress.data.beir import DataFormatError, read_lines

__all__ = [
    "integer_score",
    "jsonl_objects",
    "pick",
    "require_dir",
    "require_file",
    "table_rows",
    "trec_qrels",
]


def require_file(path: Path, what: str, option: str) -> Path:
    """``path`` if it is a file; else a :class:`DataFormatError` naming ``option``."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; expected {what} ({option})")
    return path


def require_dir(path: Path, what: str, option: str) -> Path:
    """``path`` if it is a folder; else a :class:`DataFormatError` naming ``option``."""
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such folder; expected {what} ({option})")
    return path


def table_rows(
    path: Path, required: Sequence[str], delimiter: str = ","
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV (or TSV) file whose first line names the columns.

    Yields
    ------
    line : int
        The row's last line in the file (1-based).
    row : dict of str to str
        Values by column name.

    Raises
    ------
    DataFormatError
        A ``required`` column is missing, a row has more or fewer values than the
        header names, or the file is not UTF-8.
    """
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            columns = reader.fieldnames or []
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataFormatError(
                    f"{path}:1: no column {', '.join(map(repr, missing))} in the header "
                    f"(columns: {', '.join(columns) or 'none'})"
                )
            for row in reader:
                if None in row or None in row.values():
                    raise DataFormatError(
                        f"{path}:{reader.line_num}: expected {len(columns)} values "
                        f"({', '.join(columns)})"
                    )
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{path}: not valid UTF-8 ({exc.reason})") from None


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """The JSON objects of a JSONL file, one a line (blank lines skipped).

    Raises
    ------
    DataFormatError
        A line is not a JSON object.
    """
    for line, text in read_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}:{line}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{path}:{line}: expected a JSON object a line")
        yield line, obj


def pick(record: dict, names: Sequence[str], where: str, what: str) -> str:
    """The value of the first of ``names`` present in ``record``, as a string.

    Raises
    ------
    DataFormatError
        None of ``names`` holds a string or an integer.
    """
    for name in names:
        value = record.get(name)
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return str(value)
    raise DataFormatError(
        f"{where}: no {what} (a string field {' or '.join(map(repr, names))}); "
        f"fields: {', '.join(record) or 'none'}"
    )


def integer_score(raw: object, where: str) -> int:
    """A relevance grade: an integer, or a number with an integer value (``1.0``).

    Raises
    ------
    DataFormatError
        ``raw`` is not an integer-valued number.
    """
    if isinstance(raw, bool):
        raise DataFormatError(f"{where}: relevance must be an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not value.is_integer():
        raise DataFormatError(f"{where}: relevance must be an integer, got {raw!r}")
    return int(value)


def trec_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """Judgments in TREC format: ``query-id iteration document-id relevance`` a line.

    Yields
    ------
    line : int
    query_id, doc_id : str
    relevance : int

    Raises
    ------
    DataFormatError
        A line does not have four whitespace-separated columns, or its relevance is
        not an integer.
    """
    for line, text in read_lines(path):
        cols = text.split()
        if not cols:
            continue
        if len(cols) != 4:
            raise DataFormatError(
                f"{path}:{line}: expected 4 whitespace-separated columns "
                f"(query-id 0 document-id relevance), got {len(cols)}"
            )
        yield line, cols[0], cols[2], integer_score(cols[3], f"{path}:{line}")
