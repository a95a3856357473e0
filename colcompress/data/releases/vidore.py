"""ViDoRe v2 (Macé et al. 2025): document pages as images, questions as queries.

The input is a local copy of one ViDoRe v2 dataset in BEIR format as the Hugging Face
hub stores it (``vidore/esg_reports_v2``, ``vidore/biomedical_lectures_v2``,
``vidore/economics_reports_v2``, ``vidore/esg_reports_human_labeled_v2``), three
folders of parquet files:

- ``corpus/<split>-*.parquet``: ``corpus-id`` and ``image`` (a struct whose ``bytes``
  hold the encoded page, or the bytes themselves);
- ``queries/<split>-*.parquet``: ``query-id``, ``query`` and, in the multilingual
  collections, ``language`` (each translation is a query of its own id);
- ``qrels/<split>-*.parquet``: ``query-id``, ``corpus-id``, ``score``.

Each page is written as ``images/<corpus-id>.<png|jpg|...>`` (its bytes unchanged) and
named by the document's ``image`` field. Reading parquet needs pyarrow, the
``media-prep`` extra.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from colcompress.data.beir import DataFormatError
from colcompress.data.releases.files import integer_score, require_dir
from colcompress.data.releases.writer import CollectionWriter

__all__ = ["COLLECTIONS", "prepare_vidore_v2"]

#: The ViDoRe v2 collections (their hub names under ``vidore/``).
COLLECTIONS = (
    "esg_reports_v2",
    "biomedical_lectures_v2",
    "economics_reports_v2",
    "esg_reports_human_labeled_v2",
)
_BATCH_ROWS = 64  # parquet rows decoded at a time (page images are large)


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "reading the ViDoRe parquet files needs pyarrow: pip install 'colcompress[media-prep]'"
        ) from None
    return pq


def _files(src: Path, config: str, split: str) -> list[Path]:
    folder = require_dir(src / config, f"the {config} parquet files of a ViDoRe release", "--src")
    files = sorted(folder.glob(f"{split}-*.parquet"))
    if not files:
        present = sorted(p.name for p in folder.glob("*.parquet"))
        raise DataFormatError(
            f"{folder}: no {split}-*.parquet (split {split!r}); parquet files present: "
            f"{', '.join(present) or 'none'}"
        )
    return files


def _rows(files: list[Path], columns: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` of every row of ``files``; ``where`` is ``file row n``."""
    pq = _parquet()
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError, ArrowInvalid
            raise DataFormatError(f"{path}: not a readable parquet file ({exc})") from None
        names = parquet.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataFormatError(
                f"{path}: no column {', '.join(map(repr, missing))} (columns: {', '.join(names)})"
            )
        row = 0
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            for record in batch.to_pylist():
                row += 1
                yield f"{path} row {row}", record


def _identifier(value: object, where: str, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise DataFormatError(f"{where}: {column!r} must be an integer or a string, got {value!r}")
    return str(value)


def _image_bytes(value: object, where: str) -> bytes:
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes) or not data:
        raise DataFormatError(f"{where}: 'image' holds no encoded image bytes")
    return data


def _extension(data: bytes, where: str) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(f"{where}: 'image' cannot be decoded ({exc})") from None
    return {"JPEG": "jpg", "TIFF": "tif"}.get(kind or "", (kind or "img").lower())


def prepare_vidore_v2(
    src: Path, writer: CollectionWriter, split: str = "test", language: str | None = None
) -> None:
    """Read one ViDoRe v2 collection into ``writer``.

    Parameters
    ----------
    src : Path
        The dataset folder (``corpus/``, ``queries/``, ``qrels/`` of parquet files).
    writer : CollectionWriter
    split : str
        The parquet files' split (``<split>-*.parquet``); ViDoRe v2 has ``test``.
    language : str or None
        Keep only the queries whose ``language`` is this (``english``, ``french``,
        ``spanish``, ``german``); None keeps every query.

    Raises
    ------
    DataFormatError
        A folder, file or column is missing, an image cannot be decoded, or a
        judgement names an unknown query or page; the message names the file and row.
    ImportError
        pyarrow is not installed (the ``media-prep`` extra).
    """
    for where, row in _rows(_files(src, "corpus", split), ["corpus-id", "image"]):
        doc_id = _identifier(row["corpus-id"], where, "corpus-id")
        data = _image_bytes(row["image"], where)
        name = writer.add_bytes(f"images/{doc_id}.{_extension(data, where)}", data)
        writer.add_document(doc_id, where, image=name)
    dropped: set[str] = set()
    languages: set[str] = set()
    query_columns = ["query-id", "query"] + (["language"] if language else [])
    for where, row in _rows(_files(src, "queries", split), query_columns):
        query_id = _identifier(row["query-id"], where, "query-id")
        if language:
            languages.add(str(row["language"]))
            if row["language"] != language:
                dropped.add(query_id)
                continue
        text = row["query"]
        if not isinstance(text, str):
            raise DataFormatError(f"{where}: 'query' must be a string, got {text!r}")
        writer.add_query(query_id, text, where)
    if language and not writer.queries:
        raise DataFormatError(
            f"{src / 'queries'}: no query in language {language!r}; languages: "
            f"{', '.join(sorted(languages))}"
        )
    for where, row in _rows(_files(src, "qrels", split), ["query-id", "corpus-id", "score"]):
        query_id = _identifier(row["query-id"], where, "query-id")
        if query_id in dropped:
            continue
        doc_id = _identifier(row["corpus-id"], where, "corpus-id")
        writer.add_judgement(query_id, doc_id, integer_score(row["score"], where), where)
