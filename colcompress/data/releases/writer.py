"""Write one collection in BEIR layout, media files included.

The folder receives ``corpus.jsonl`` (``_id``, ``title``, ``text`` and the media
fields of :data:`~colcompress.data.beir.MEDIA_FIELDS`, paths relative to the folder),
``queries.jsonl`` and ``qrels/<split>.tsv``. Media files are placed in the folder as
they are added (bytes written, or a source file linked or copied); the JSONL and TSV
files are written by :meth:`CollectionWriter.write`. Write into a temporary folder
(:func:`~colcompress.atomic.atomic_dir`) so a failed preparation leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from colcompress.data.beir import DataFormatError

__all__ = ["MEDIA_MODES", "CollectionWriter"]

#: How a source media file enters the collection: ``link`` (a symbolic link to the
#: source's absolute path) or ``copy``.
MEDIA_MODES = ("link", "copy")


def _check_id(value: str, kind: str, where: str) -> None:
    if not value or any(c in value for c in "\t\r\n"):
        raise DataFormatError(
            f"{where}: {kind} id {value!r} must be non-empty, without tabs or line breaks"
        )


class CollectionWriter:
    """Documents, queries and judgements of one collection, and its media files.

    Every ``where`` argument names the source of the record (``file:line`` or
    ``file row n``) for the errors raised here.

    Parameters
    ----------
    folder : Path
        An existing, empty folder to write into.
    media : str
        How source media files are placed: one of :data:`MEDIA_MODES`.
    """

    def __init__(self, folder: Path, media: str = "link") -> None:
        if media not in MEDIA_MODES:
            raise ValueError(f"media={media!r}: expected one of {list(MEDIA_MODES)}")
        self.folder = Path(folder)
        self.media = media
        self.corpus: dict[str, dict[str, object]] = {}
        self.queries: dict[str, str] = {}
        self.qrels: dict[str, dict[str, int]] = {}
        self._first: dict[tuple[str, str], str] = {}

    def _target(self, name: str) -> Path:
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add_bytes(self, name: str, data: bytes) -> str:
        """Write ``data`` as the file ``name`` (relative to the folder); return ``name``."""
        self._target(name).write_bytes(data)
        return name

    def add_file(self, name: str, source: Path) -> str:
        """Link or copy the file ``source`` as ``name`` (relative); return ``name``.

        A name already placed (a video that is also the document's audio) is kept.
        """
        target = self._target(name)
        if target.is_symlink() or target.exists():
            return name
        if self.media == "link":
            os.symlink(Path(source).resolve(), target)
        else:
            shutil.copyfile(source, target)
        return name

    def add_document(self, doc_id: str, where: str, **fields: object) -> None:
        """Add a corpus line: ``title``, ``text`` and media fields (relative paths).

        Raises
        ------
        DataFormatError
            The id is empty, holds a tab or line break, or is already a document's.
        """
        _check_id(doc_id, "document", where)
        if doc_id in self.corpus:
            raise DataFormatError(f"{where}: duplicate document id {doc_id!r}")
        record: dict[str, object] = {"_id": doc_id}
        record.update((key, value) for key, value in fields.items() if value not in (None, ""))
        self.corpus[doc_id] = record

    def add_query(self, query_id: str, text: str, where: str) -> None:
        """Add a query.

        Raises
        ------
        DataFormatError
            The id is empty, holds a tab or line break, or is already a query's; or the
            text is empty.
        """
        _check_id(query_id, "query", where)
        if query_id in self.queries:
            raise DataFormatError(f"{where}: duplicate query id {query_id!r}")
        if not text.strip():
            raise DataFormatError(f"{where}: query {query_id!r} has no text")
        self.queries[query_id] = text

    def add_judgement(self, query_id: str, doc_id: str, score: int, where: str) -> None:
        """Judge document ``doc_id`` for query ``query_id`` (> 0: relevant).

        Raises
        ------
        DataFormatError
            The query or the document was not added, or the pair was judged
            differently before.
        """
        unknown = []
        if query_id not in self.queries:
            unknown.append(f"query id {query_id!r} is not among the {len(self.queries)} queries")
        if doc_id not in self.corpus:
            unknown.append(f"document id {doc_id!r} is not among the {len(self.corpus)} documents")
        if unknown:
            raise DataFormatError(f"{where}: " + "; ".join(unknown))
        previous = self.qrels.get(query_id, {}).get(doc_id)
        if previous is not None and previous != score:
            raise DataFormatError(
                f"{where}: judgement {score} for ({query_id!r}, {doc_id!r}) conflicts with "
                f"{previous} at {self._first[(query_id, doc_id)]}"
            )
        self._first.setdefault((query_id, doc_id), where)
        self.qrels.setdefault(query_id, {})[doc_id] = score

    def write(self, split: str) -> None:
        """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

        Raises
        ------
        DataFormatError
            No document, or no judgement.
        """
        if not self.corpus:
            raise DataFormatError(f"{self.folder}: no document was read")
        if not self.qrels:
            raise DataFormatError(f"{self.folder}: no judgement was read")
        with self._target("corpus.jsonl").open("w", encoding="utf-8") as f:
            for record in self.corpus.values():
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        with self._target("queries.jsonl").open("w", encoding="utf-8") as f:
            for query_id, text in self.queries.items():
                f.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
        with self._target(f"qrels/{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for query_id, judged in self.qrels.items():
                f.writelines(f"{query_id}\t{doc_id}\t{score}\n" for doc_id, score in judged.items())

    def summary(self) -> str:
        """Counts of documents, queries and judgements, for the command's report."""
        judged = sum(len(j) for j in self.qrels.values())
        return (
            f"{len(self.corpus)} documents, {len(self.queries)} queries, "
            f"{judged} judgements of {len(self.qrels)} queries"
        )
