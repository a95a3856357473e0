"""BEIR-format collections: loading with precise errors, and reproducible slices.

A BEIR dataset directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``, and
optionally media: ``image``, ``images``, ``video``, ``audio``, see :data:`MEDIA_FIELDS`),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``: one
``query-id<TAB>corpus-id<TAB>score`` judgement a line, integer scores (``1.0`` reads
as 1). A first line whose score column is not a number is a header and skipped; a
first line with a numeric score is a judgement. Files are UTF-8; a line that is not
raises :class:`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BeirData",
    "DataFormatError",
    "Doc",
    "MEDIA_FIELDS",
    "available_splits",
    "read_lines",
    "load_beir",
    "check_layout",
    "load_beir_splits",
    "merge_collections",
    "slice_beir",
]


#: Corpus fields naming media files, relative to the dataset folder: ``image`` (one
#: path), ``images`` (a list, e.g. the pages of a document), ``video``, ``audio``.
MEDIA_FIELDS = ("image", "images", "video", "audio")


class DataFormatError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


@dataclass(slots=True)
class Doc:
    """One corpus document: text and/or media files (read when encoded, not here).

    Treat as read-only (corpora are shared between splits). Not frozen: Lightning's
    batch transfer rebuilds the dataclasses of a training batch field by field.

    Attributes
    ----------
    title : str
        Title, ``""`` when the corpus has none.
    text : str
        Body text.
    images : tuple of Path
        Image files (one for a photo, several for the pages of a document), resolved
        against the dataset folder.
    video : Path or None
        A video file.
    audio : Path or None
        An audio file.
    """

    title: str
    text: str
    images: tuple[Path, ...] = ()
    video: Path | None = None
    audio: Path | None = None

    @property
    def full_text(self) -> str:
        """Title and text joined by a space and stripped, as BEIR and PyLate do."""
        return (self.title + " " + self.text).strip()

    @property
    def media(self) -> tuple[Path, ...]:
        """Every media file of the document: images, then video, then audio."""
        return self.images + tuple(p for p in (self.video, self.audio) if p is not None)


@dataclass
class BeirData:
    """One split of a BEIR collection.

    Attributes
    ----------
    corpus : dict of str to Doc
        Documents by id, in file order.
    queries : dict of str to str
        Query texts by id, only the queries judged in ``qrels``, in file order.
    qrels : dict of str to dict of str to int
        ``qrels[qid][docid]`` is the graded relevance (> 0 relevant, <= 0 judged
        non-relevant).
    name : str
        Dataset name (the directory name), used in cache keys and reports.
    split : str or None
        Split the qrels come from (``"train"``, ``"test"``, ...), ``None`` if unknown.
    """

    corpus: dict[str, Doc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str
    split: str | None = None

    def positives(self, qid: str) -> set[str]:
        """Return the ids of the documents judged relevant (score > 0) for ``qid``."""
        return {docid for docid, score in self.qrels.get(qid, {}).items() if score > 0}


def _error(path: Path, line: int | None, message: str) -> DataFormatError:
    where = f"{path}:{line}" if line is not None else str(path)
    return DataFormatError(f"{where}: {message}")


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, line)`` of a UTF-8 text file, line ends kept.

    Raises
    ------
    DataFormatError
        A line is not valid UTF-8; the message names the file, the line and the
        byte offset within it.
    """
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _error(
                    path,
                    lineno,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "expected a UTF-8 text file",
                ) from None


def _read_jsonl_records(path: Path, kind: str) -> list[tuple[int, dict]]:
    """Parse a JSONL file into ``(1-based line, object)`` pairs, skipping blank lines."""
    if not path.is_file():
        raise _error(path, None, f"missing {kind} file (expected a BEIR {path.name})")
    records = []
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(
                path, lineno, f"invalid JSON ({exc.msg}); expected one object a line"
            ) from None
        if not isinstance(obj, dict):
            raise _error(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
        records.append((lineno, obj))
    return records


def _record_id(path: Path, lineno: int, obj: dict, seen: dict[str, int]) -> str:
    if "_id" not in obj:
        raise _error(path, lineno, 'missing "_id"')
    rid = obj["_id"]
    if not isinstance(rid, str):
        raise _error(path, lineno, f'"_id" must be a string, got {type(rid).__name__} {rid!r}')
    if rid in seen:
        raise _error(path, lineno, f'duplicate "_id" {rid!r} (first on line {seen[rid]})')
    seen[rid] = lineno
    return rid


def _string_field(path: Path, lineno: int, obj: dict, key: str, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise _error(path, lineno, f'missing string "{key}"')
        return ""
    if not isinstance(value, str):
        raise _error(path, lineno, f'"{key}" must be a string, got {type(value).__name__}')
    return value


def _media_path(path: Path, lineno: int, value: object, key: str) -> Path:
    """A media path of a corpus line, resolved against the corpus file's folder."""
    if not isinstance(value, str) or not value:
        raise _error(
            path,
            lineno,
            f'"{key}" must be a non-empty path string (relative to {path.parent}), got {value!r}',
        )
    return path.parent / value


def _images(path: Path, lineno: int, obj: dict) -> tuple[Path, ...]:
    image, images = obj.get("image"), obj.get("images")
    if image is not None and images is not None:
        raise _error(path, lineno, 'give "image" (one file) or "images" (a list), not both')
    if image is not None:
        return (_media_path(path, lineno, image, "image"),)
    if images is None:
        return ()
    if not isinstance(images, list) or not images:
        raise _error(path, lineno, f'"images" must be a non-empty list of paths, got {images!r}')
    return tuple(_media_path(path, lineno, item, "images") for item in images)


def _read_corpus(path: Path) -> dict[str, Doc]:
    corpus: dict[str, Doc] = {}
    seen: dict[str, int] = {}
    for lineno, obj in _read_jsonl_records(path, "corpus"):
        rid = _record_id(path, lineno, obj, seen)
        title = _string_field(path, lineno, obj, "title", required=False)
        text = _string_field(path, lineno, obj, "text", required=False)
        video, audio = obj.get("video"), obj.get("audio")
        corpus[rid] = Doc(
            title=title,
            text=text,
            images=_images(path, lineno, obj),
            video=None if video is None else _media_path(path, lineno, video, "video"),
            audio=None if audio is None else _media_path(path, lineno, audio, "audio"),
        )
    if not corpus:
        raise _error(path, None, "empty corpus; expected at least one document")
    if not any(doc.full_text or doc.media for doc in corpus.values()):
        raise _error(
            path,
            None,
            f"none of the {len(corpus)} documents has content: every title and text is "
            f"empty and none names a media file ({', '.join(MEDIA_FIELDS)})",
        )
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    seen: dict[str, int] = {}
    for lineno, obj in _read_jsonl_records(path, "queries"):
        rid = _record_id(path, lineno, obj, seen)
        queries[rid] = _string_field(path, lineno, obj, "text", required=True)
    return queries


def available_splits(path: str | Path) -> list[str]:
    """Return the split names with a ``qrels/<split>.tsv`` file in a BEIR directory, sorted."""
    qrels_dir = Path(path) / "qrels"
    if not qrels_dir.is_dir():
        return []
    return sorted(p.stem for p in qrels_dir.glob("*.tsv") if p.is_file())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _integer_score(path: Path, lineno: int, raw: str) -> int:
    """A qrels score: an integer, or a number with an integer value (``"1.0"``)."""
    try:
        return int(raw)
    except ValueError:
        pass
    value = float(raw) if _is_number(raw) else math.nan
    if not value.is_integer():
        raise _error(path, lineno, f"score must be an integer, got {raw!r}")
    return int(value)


def _read_qrels(
    path: Path,
    corpus: dict[str, Doc],
    queries: dict[str, str],
    allow_unknown_ids: bool,
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    dropped = 0
    first = True
    for lineno, line in read_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise _error(
                path,
                lineno,
                f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}",
            )
        qid, docid, raw_score = cols
        if first and not _is_number(raw_score):  # a header: its score column is a name
            first = False
            continue
        first = False
        score = _integer_score(path, lineno, raw_score)
        unknown = []
        if qid not in queries:
            unknown.append(f"query id {qid!r} is not in queries.jsonl")
        if docid not in corpus:
            unknown.append(f"corpus id {docid!r} is not in corpus.jsonl")
        if unknown:
            if allow_unknown_ids:
                dropped += 1
                continue
            raise _error(
                path,
                lineno,
                "; ".join(unknown) + " (to drop such rows with a warning, override "
                "dataset.allow_unknown_ids=true; in Python, allow_unknown_ids=True)",
            )
        key = (qid, docid)
        previous = qrels.get(qid, {}).get(docid)
        if previous is not None:
            if previous != score:
                raise _error(
                    path,
                    lineno,
                    f"conflicting judgement {score} for ({qid!r}, {docid!r}), "
                    f"line {first_line[key]} says {previous}",
                )
            continue
        first_line[key] = lineno
        qrels.setdefault(qid, {})[docid] = score
    if not qrels:
        note = f" ({dropped} rows with unknown ids dropped)" if dropped else ""
        raise _error(path, None, f"no judgements{note}; expected at least one qrels row")
    if dropped:
        warnings.warn(
            f"{path}: dropped {dropped} qrels rows naming unknown query or corpus ids",
            stacklevel=3,
        )
    return qrels


LAYOUT = (
    'a BEIR-layout folder: corpus.jsonl (one {"_id", "title", "text"} object a line), '
    'queries.jsonl ({"_id", "text"}) and qrels/<split>.tsv '
    "(query-id<TAB>corpus-id<TAB>score)"
)


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise DataFormatError(f"{path}: not a directory; expected {LAYOUT}")


def check_layout(path: Path) -> None:
    """Refuse a folder that is not a BEIR collection, saying what is expected.

    Raises
    ------
    DataFormatError
        ``path`` is missing, not a folder, or lacks ``corpus.jsonl``,
        ``queries.jsonl`` or any ``qrels/*.tsv``.
    """
    _check_dir(path)
    missing = [f for f in ("corpus.jsonl", "queries.jsonl") if not (path / f).is_file()]
    if not available_splits(path):
        missing.append("qrels/<split>.tsv")
    if missing:
        raise DataFormatError(f"{path}: no {', '.join(missing)}; expected {LAYOUT}")


def _qrels_path(path: Path, split: str) -> Path:
    qrels_path = path / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = available_splits(path)
        raise _error(
            qrels_path,
            None,
            f"no qrels for split {split!r}; splits present: {', '.join(splits) or 'none'}",
        )
    return qrels_path


def load_beir_splits(
    path: str | Path, splits: list[str], allow_unknown_ids: bool = False
) -> dict[str, BeirData]:
    """Load several splits of one BEIR directory, reading the corpus only once.

    Parameters
    ----------
    path : str or Path
        The dataset directory; its name becomes ``BeirData.name``.
    splits : list of str
        Split names (``qrels/<split>.tsv`` files).
    allow_unknown_ids : bool
        Drop qrels rows naming unknown query or document ids with a counted warning
        instead of raising.

    Returns
    -------
    dict of str to BeirData
        One entry per split; the ``corpus`` dict is shared between them (treat as
        read-only).

    Raises
    ------
    DataFormatError
        A file is missing or malformed; the message names the file, the 1-based line
        and what was expected.
    """
    path = Path(path)
    _check_dir(path)
    qrels_paths = {split: _qrels_path(path, split) for split in splits}
    corpus = _read_corpus(path / "corpus.jsonl")
    queries = _read_queries(path / "queries.jsonl")
    out = {}
    for split, qrels_path in qrels_paths.items():
        qrels = _read_qrels(qrels_path, corpus, queries, allow_unknown_ids)
        split_queries = {qid: text for qid, text in queries.items() if qid in qrels}
        out[split] = BeirData(
            corpus=corpus, queries=split_queries, qrels=qrels, name=path.name, split=split
        )
    return out


def load_beir(path: str | Path, split: str, allow_unknown_ids: bool = False) -> BeirData:
    """Load one split of a BEIR directory.

    Parameters
    ----------
    path : str or Path
        The dataset directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``).
    split : str
        Split name; ``qrels/<split>.tsv`` must exist.
    allow_unknown_ids : bool
        Drop qrels rows naming unknown ids with a counted warning instead of raising.

    Returns
    -------
    BeirData
        The full corpus and the queries judged in the split.

    Raises
    ------
    DataFormatError
        A file is missing or malformed (bad JSON, missing/non-string/duplicate
        ``_id``, bad qrels row, unknown ids, empty corpus, missing split); the
        message names the file, the 1-based line and what was expected.
    """
    return load_beir_splits(path, [split], allow_unknown_ids=allow_unknown_ids)[split]


def slice_beir(
    data: BeirData,
    max_queries: int | None = None,
    max_docs: int | None = None,
    seed: int = 0,
) -> BeirData:
    """Return a reproducible subset for tests and debug runs.

    Parameters
    ----------
    data : BeirData
        The split to slice.
    max_queries : int or None
        Keep a seeded random sample of this many queries (in their original order);
        ``None`` keeps all.
    max_docs : int or None
        Corpus size to aim for: every document judged for a kept query is kept (even
        beyond ``max_docs``), then seeded random other documents fill up to
        ``max_docs``; ``None`` keeps the whole corpus.
    seed : int
        Seed of both samples.

    Returns
    -------
    BeirData
        A new object (documents in original order) whose qrels only name kept
        queries and documents.
    """
    for option, value in (("max_queries", max_queries), ("max_docs", max_docs)):
        if value is not None and value < 0:
            raise ValueError(f"{option} must be >= 0 or None, got {value}")
    rng = random.Random(seed)
    qids = list(data.queries)
    if max_queries is not None and max_queries < len(qids):
        chosen = set(rng.sample(qids, max_queries))
        qids = [qid for qid in qids if qid in chosen]
    qrels = {qid: dict(data.qrels[qid]) for qid in qids if qid in data.qrels}
    if max_docs is None:
        corpus = data.corpus
    else:
        keep = {docid for judged in qrels.values() for docid in judged}
        others = [docid for docid in data.corpus if docid not in keep]
        extra = max(0, min(max_docs - len(keep), len(others)))
        keep.update(rng.sample(others, extra))
        corpus = {docid: doc for docid, doc in data.corpus.items() if docid in keep}
    return BeirData(
        corpus=corpus,
        queries={qid: data.queries[qid] for qid in qids},
        qrels=qrels,
        name=data.name,
        split=data.split,
    )


def merge_collections(
    parts: list[tuple[str, BeirData, dict[str, list[str]]]],
) -> tuple[BeirData, dict[str, list[str]]]:
    """Concatenate several collections' splits into one, ids prefixed ``<name>/``.

    Parameters
    ----------
    parts : list of (name, BeirData, candidates)
        Each collection's split and per-query negative candidates (document ids of
        its own corpus).

    Returns
    -------
    data : BeirData
        Corpora, queries and qrels of all parts, named ``"+".join(names)``.
    candidates : dict of str to list of str
        The candidates, ids prefixed as in ``data``.
    """
    corpus: dict[str, Doc] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    candidates: dict[str, list[str]] = {}
    for name, data, cands in parts:
        corpus.update((f"{name}/{d}", doc) for d, doc in data.corpus.items())
        queries.update((f"{name}/{q}", text) for q, text in data.queries.items())
        for q, judged in data.qrels.items():
            qrels[f"{name}/{q}"] = {f"{name}/{d}": score for d, score in judged.items()}
        for q, docs in cands.items():
            candidates[f"{name}/{q}"] = [f"{name}/{d}" for d in docs]
    splits = {data.split for _, data, _ in parts}
    name = "+".join(name for name, _, _ in parts)
    return BeirData(corpus, queries, qrels, name, splits.pop() if len(splits) == 1 else None), (
        candidates
    )
