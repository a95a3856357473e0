"""MultiVENT 2.0 (Kriz et al. 2025): event-centric retrieval of news videos.

The release's test collection comes as tar files of videos (and of their audio),
queries and TREC judgments; untar them and point at the files:

- ``videos``: a folder (searched recursively) of ``<video-id>.<ext>`` files, ext one
  of :data:`VIDEO_EXTENSIONS`. Every video is a document; its id is the file name
  without the extension.
- ``queries``: ``.tsv`` (``query-id<TAB>text`` a line; a first line whose first
  column is ``query_id``, ``qid``, ``query-id``, ``id`` or ``_id`` is a header) or
  ``.jsonl`` (an object a line: the id in ``query_id``, ``qid``, ``query-id``,
  ``_id`` or ``id``, the text in ``query`` or ``text``).
- ``qrels``: TREC judgments, ``query-id 0 video-id relevance`` a line.
- ``audio`` (optional): a folder (searched recursively) of ``<video-id>.<ext>``
  audio files, ext one of :data:`AUDIO_EXTENSIONS`. A video without one takes its
  own audio track, when it has one, as the document's ``audio``.
- ``metadata`` (optional): ``.jsonl``, ``.csv`` or ``.tsv`` (with a header) of the
  videos' text metadata: the id in ``video_id``, ``id``, ``_id`` or ``doc_id``, the
  title in ``title``, the description in ``description`` or ``text``; they become the
  document's ``title`` and ``text``. Rows of videos not in ``videos`` are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av

from colcompress.data.beir import DataFormatError, read_lines
from colcompress.data.releases.files import (
    jsonl_objects,
    pick,
    require_dir,
    require_file,
    table_rows,
    trec_qrels,
)
from colcompress.data.releases.writer import CollectionWriter

__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "prepare_multivent2"]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")
QUERY_IDS = ("query_id", "qid", "query-id", "_id", "id")
QUERY_TEXTS = ("query", "text")
METADATA_IDS = ("video_id", "id", "_id", "doc_id")
METADATA_TEXTS = ("description", "text")


def _media_files(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """``{file stem: path}`` of the files under ``folder`` with one of ``extensions``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        if path.stem in found:
            raise DataFormatError(
                f"{path}: a second file for id {path.stem!r} (first {found[path.stem]})"
            )
        found[path.stem] = path
    if not found:
        raise DataFormatError(f"{folder}: no file ending in {', '.join(extensions)}")
    return found


def _has_audio_track(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError) as exc:
        raise DataFormatError(f"{path}: not a readable video ({exc})") from None


def _queries(path: Path) -> Iterator[tuple[str, str, str]]:
    """``(where, query id, text)`` of a ``.tsv`` or ``.jsonl`` queries file."""
    if path.suffix == ".jsonl":
        for line, obj in jsonl_objects(path):
            where = f"{path}:{line}"
            yield (
                where,
                pick(obj, QUERY_IDS, where, "query id"),
                pick(obj, QUERY_TEXTS, where, "query text"),
            )
        return
    if path.suffix != ".tsv":
        raise DataFormatError(f"{path}: queries must be a .tsv or .jsonl file")
    for line, text in read_lines(path):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        cols = text.split("\t")
        if len(cols) != 2:
            raise DataFormatError(
                f"{path}:{line}: expected 2 tab-separated columns (query-id, text), got {len(cols)}"
            )
        if line == 1 and cols[0].strip().lower() in QUERY_IDS:
            continue
        yield f"{path}:{line}", cols[0].strip(), cols[1].strip()


def _metadata(path: Path) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` of a ``.jsonl``, ``.csv`` or ``.tsv`` metadata file."""
    if path.suffix == ".jsonl":
        for line, obj in jsonl_objects(path):
            yield f"{path}:{line}", obj
    elif path.suffix in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix == ".tsv" else ","
        for line, row in table_rows(path, (), delimiter):
            yield f"{path}:{line}", row
    else:
        raise DataFormatError(f"{path}: metadata must be a .jsonl, .csv or .tsv file")


def _read_metadata(path: Path, ids: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """``{video id: (title, description)}`` of the videos in ``ids``."""
    found: dict[str, tuple[str, str]] = {}
    for where, record in _metadata(path):
        video_id = pick(record, METADATA_IDS, where, "video id")
        if video_id not in ids:
            continue
        title = record.get("title") or ""
        text = next((record[k] for k in METADATA_TEXTS if record.get(k)), "")
        if not isinstance(title, str) or not isinstance(text, str):
            raise DataFormatError(f"{where}: title and description must be strings")
        found[video_id] = (title.strip(), text.strip())
    return found


def prepare_multivent2(
    videos: Path,
    queries: Path,
    qrels: Path,
    writer: CollectionWriter,
    audio: Path | None = None,
    metadata: Path | None = None,
) -> None:
    """Read MultiVENT 2.0 into ``writer``: ``videos/<id><ext>``, ``audio/<id><ext>``.

    Parameters
    ----------
    videos, queries, qrels, audio, metadata : Path
        The release's files, as the module describes them.
    writer : CollectionWriter

    Raises
    ------
    DataFormatError
        A file or folder is missing or malformed, a video cannot be opened, or a
        judgement names a query or video that is not there; the message names the
        file and line.
    """
    require_dir(videos, "the MultiVENT 2.0 videos, <video-id>.<ext>", "--videos")
    require_file(queries, "the queries (.tsv or .jsonl)", "--queries")
    require_file(qrels, "TREC judgments (query-id 0 video-id relevance)", "--qrels")
    video_files = _media_files(videos, VIDEO_EXTENSIONS)
    audio_files = {}
    if audio is not None:
        audio_files = _media_files(require_dir(audio, "audio files", "--audio"), AUDIO_EXTENSIONS)
    texts = {}
    if metadata is not None:
        texts = _read_metadata(require_file(metadata, "video metadata", "--metadata"), video_files)
    for video_id, source in video_files.items():
        video = writer.add_file(f"videos/{video_id}{source.suffix.lower()}", source)
        if video_id in audio_files:
            own = audio_files[video_id]
            sound = writer.add_file(f"audio/{video_id}{own.suffix.lower()}", own)
        else:
            sound = video if _has_audio_track(source) else None
        title, text = texts.get(video_id, ("", ""))
        writer.add_document(video_id, str(source), title=title, text=text, video=video, audio=sound)
    for where, query_id, text in _queries(queries):
        writer.add_query(query_id, text, where)
    for line, query_id, doc_id, score in trec_qrels(qrels):
        writer.add_judgement(query_id, doc_id, score, f"{qrels}:{line}")
