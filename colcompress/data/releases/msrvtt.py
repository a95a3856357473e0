"""MSR-VTT 1k-A (Yu et al. 2018, the JSFusion test split): 1,000 videos, one sentence each.

The inputs are ``MSRVTT_JSFUSION_test.csv`` (columns ``key``, ``vid_key``,
``video_id``, ``sentence``: one row a video, the sentence describing it) and the folder
of MSR-VTT videos, ``<video_id>.mp4``. Each video is a document (``video``), each
sentence a query (id ``key``) judged relevant to its video only.
"""

from __future__ import annotations

from pathlib import Path

from colcompress.data.beir import DataFormatError
from colcompress.data.releases.files import require_dir, require_file, table_rows
from colcompress.data.releases.writer import CollectionWriter

__all__ = ["prepare_msrvtt_1ka"]

COLUMNS = ("key", "video_id", "sentence")


def prepare_msrvtt_1ka(csv_path: Path, videos: Path, writer: CollectionWriter) -> None:
    """Read MSR-VTT 1k-A into ``writer``: videos as ``videos/<video_id>.mp4``.

    Parameters
    ----------
    csv_path : Path
        ``MSRVTT_JSFUSION_test.csv``.
    videos : Path
        The folder holding ``<video_id>.mp4`` for every row.
    writer : CollectionWriter

    Raises
    ------
    DataFormatError
        The CSV or the folder is missing, a column is missing, a row's video file is
        missing, or a ``key`` repeats; the message names the file and line.
    """
    require_file(csv_path, "MSRVTT_JSFUSION_test.csv", "--csv")
    require_dir(videos, "the MSR-VTT videos, <video_id>.mp4", "--videos")
    for line, row in table_rows(csv_path, COLUMNS):
        where = f"{csv_path}:{line}"
        video_id, key = row["video_id"].strip(), row["key"].strip()
        if video_id not in writer.corpus:
            source = videos / f"{video_id}.mp4"
            if not source.is_file():
                raise DataFormatError(f"{where}: video {video_id!r}: no file {source}")
            name = writer.add_file(f"videos/{video_id}.mp4", source)
            writer.add_document(video_id, where, video=name)
        writer.add_query(key, row["sentence"].strip(), where)
        writer.add_judgement(key, video_id, 1, where)
