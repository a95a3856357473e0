"""Convert a public media release into a BEIR-layout collection with media fields.

    colcompress-prepare-media vidore_v2 --src esg_reports_v2/ --out data/esg_reports_v2
    colcompress-prepare-media msrvtt_1ka --csv MSRVTT_JSFUSION_test.csv \\
        --videos MSRVTT/videos/all --out data/msrvtt_1ka
    colcompress-prepare-media multivent2 --videos test/videos --queries queries.tsv \\
        --qrels judgments.qrels --out data/multivent2

``python -m colcompress.data.prepare_media`` is the same command. The collection is
written into a temporary folder next to ``--out`` and renamed into place once it is
complete and loads with :func:`~colcompress.data.beir.load_beir`: a failed preparation
leaves nothing at ``--out``. Judgements go to ``qrels/test.tsv``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from colcompress.atomic import atomic_dir
from colcompress.data.beir import DataFormatError, load_beir
from colcompress.data.releases.msrvtt import prepare_msrvtt_1ka
from colcompress.data.releases.multivent import prepare_multivent2
from colcompress.data.releases.vidore import prepare_vidore_v2
from colcompress.data.releases.writer import MEDIA_MODES, CollectionWriter

__all__ = ["SPLIT", "main", "prepare"]

SPLIT = "test"


def prepare(
    out: Path, fill: Callable[[CollectionWriter], None], media: str = "link", replace: bool = False
) -> str:
    """Write the collection ``fill`` reads into the folder ``out``, atomically.

    Parameters
    ----------
    out : Path
        The collection folder to create.
    fill : callable
        Reads a release into the writer it is given (e.g. a
        :func:`~colcompress.data.releases.msrvtt.prepare_msrvtt_1ka` with its inputs bound).
    media : str
        ``link`` or ``copy`` the release's media files (see
        :data:`~colcompress.data.releases.writer.MEDIA_MODES`).
    replace : bool
        Replace an existing ``out`` (otherwise refused).

    Returns
    -------
    str
        What was written: counts of documents, queries and judgements.

    Raises
    ------
    DataFormatError
        The release is incomplete or malformed (nothing is written).
    FileExistsError
        ``out`` exists and ``replace`` is false.
    ImportError
        A reader's optional dependency is missing (pyarrow for ViDoRe).
    """
    with atomic_dir(out, replace=replace) as staging:
        writer = CollectionWriter(staging, media)
        fill(writer)
        writer.write(SPLIT)
        load_beir(staging, SPLIT)
    return writer.summary()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colcompress-prepare-media",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True, help="the collection folder to write")
    common.add_argument(
        "--media",
        choices=MEDIA_MODES,
        default="link",
        help="link (symbolic links, the default) or copy the release's media files",
    )
    common.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    collections = parser.add_subparsers(dest="collection", required=True)
    vidore = collections.add_parser(
        "vidore_v2", parents=[common], help="a ViDoRe v2 collection (parquet, BEIR format)"
    )
    vidore.add_argument(
        "--src",
        type=Path,
        required=True,
        help="the dataset folder: corpus/, queries/, qrels/ of <split>-*.parquet files",
    )
    vidore.add_argument("--split", default="test", help="the parquet files' split (test)")
    vidore.add_argument(
        "--language", default=None, help="keep the queries in this language only (e.g. english)"
    )
    msrvtt = collections.add_parser(
        "msrvtt_1ka", parents=[common], help="MSR-VTT 1k-A (JSFusion test split)"
    )
    msrvtt.add_argument("--csv", type=Path, required=True, help="MSRVTT_JSFUSION_test.csv")
    msrvtt.add_argument("--videos", type=Path, required=True, help="folder of <video_id>.mp4")
    multivent = collections.add_parser(
        "multivent2", parents=[common], help="MultiVENT 2.0 (videos, queries, TREC judgments)"
    )
    multivent.add_argument("--videos", type=Path, required=True, help="folder of <id>.<ext>")
    multivent.add_argument(
        "--queries", type=Path, required=True, help="query-id<TAB>text (.tsv) or .jsonl"
    )
    multivent.add_argument(
        "--qrels", type=Path, required=True, help="TREC judgments: query-id 0 video-id relevance"
    )
    multivent.add_argument("--audio", type=Path, default=None, help="folder of <id>.<ext> audio")
    multivent.add_argument(
        "--metadata",
        type=Path,
        default=None,
        help="video titles and descriptions (.jsonl, .csv or .tsv) as document text",
    )
    return parser


def _reader(args: argparse.Namespace) -> Callable[[CollectionWriter], None]:
    if args.collection == "vidore_v2":
        return lambda w: prepare_vidore_v2(args.src, w, args.split, args.language)
    if args.collection == "msrvtt_1ka":
        return lambda w: prepare_msrvtt_1ka(args.csv, args.videos, w)
    return lambda w: prepare_multivent2(
        args.videos, args.queries, args.qrels, w, args.audio, args.metadata
    )


def _fail(message: str) -> None:
    print(f"colcompress-prepare-media: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    """The ``colcompress-prepare-media`` command line; exits 1 with the error's message
    when the release is incomplete or ``--out`` exists."""
    args = _parser().parse_args(argv)
    try:
        summary = prepare(args.out, _reader(args), args.media, args.overwrite)
    except FileExistsError as err:
        _fail(f"{err} (--overwrite replaces it)")
    except (DataFormatError, ImportError) as err:
        _fail(str(err))
    print(f"{args.out}: {summary}")


if __name__ == "__main__":
    main()
