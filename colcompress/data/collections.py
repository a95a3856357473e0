"""The public BEIR collections by name: archive URL, md5 and evaluation conventions.

A name is bound to its archive: ``dataset=beir dataset.name=fiqa`` downloads FiQA's
official archive and checks FiQA's published md5, and a URL or md5 given beside a
name of this table must be that name's (:func:`resolve_source`). The checksums are
the ones the BEIR repository publishes for each ``datasets/<name>.zip``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

__all__ = [
    "BEIR_COLLECTIONS",
    "BeirCollection",
    "SourceMismatchError",
    "collection_names",
    "resolve_source",
]

_BASE = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"


class SourceMismatchError(ValueError):
    """A dataset name paired with another collection's URL or md5."""


@dataclass(frozen=True)
class BeirCollection:
    """One public BEIR collection.

    Attributes
    ----------
    name : str
        BEIR's name, also the archive's top folder and the folder under ``data_dir``.
    md5 : str
        md5 of the official archive.
    splits : tuple of str
        The qrels splits the archive holds.
    ignore_identical_ids : bool
        BEIR drops a retrieved document whose id equals the query id (ArguAna, Quora:
        queries are corpus documents).
    query_length : int, "auto" or None
        The collection's query length default (``auto``: from its query lengths, see
        :func:`~colcompress.data.conventions.auto_query_length`; None: the model's).
    """

    name: str
    md5: str
    splits: tuple[str, ...]
    ignore_identical_ids: bool = False
    query_length: int | str | None = None

    @property
    def url(self) -> str:
        return _BASE.format(self.name)


BEIR_COLLECTIONS: dict[str, BeirCollection] = {
    c.name: c
    for c in (
        BeirCollection("msmarco", "444067daf65d982533ea17ebd59501e4", ("train", "dev", "test")),
        BeirCollection("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1", ("test",)),
        BeirCollection("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d", ("train", "dev", "test")),
        BeirCollection("nq", "d4d3d2e48787a744b6f6e691ff534307", ("test",)),
        BeirCollection("hotpotqa", "f412724f78b0d91183a0e86805e16114", ("train", "dev", "test")),
        BeirCollection("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9", ("train", "dev", "test")),
        BeirCollection(
            "arguana",
            "8ad3e3c2a5867cdced806d6503f29b99",
            ("test",),
            ignore_identical_ids=True,
            query_length="auto",
        ),
        BeirCollection(
            "webis-touche2020", "46f650ba5a527fc69e0a6521c5a23563", ("test",), query_length="auto"
        ),
        BeirCollection(
            "quora", "18fb154900ba42a600f84b839c173167", ("dev", "test"), ignore_identical_ids=True
        ),
        BeirCollection("dbpedia-entity", "c2a39eb420a3164af735795df012ac2c", ("dev", "test")),
        BeirCollection("scidocs", "38121350fc3a4d2f48850f6aff52e4a9", ("test",)),
        BeirCollection("fever", "5a818580227bfb4b35bb6fa46d9b6c03", ("train", "dev", "test")),
        BeirCollection("climate-fever", "8b66f0a9126c521bae2bde127b4dc99d", ("test",)),
        BeirCollection("scifact", "5f7d1de60b170fc8027bb7898e2efca1", ("train", "test")),
    )
}


def resolve_source(name: str, url: str | None, md5: str | None) -> tuple[str | None, str | None]:
    """The archive URL and md5 to fetch collection ``name`` from.

    Parameters
    ----------
    name : str
        Collection name (the folder under ``data_dir``).
    url, md5 : str or None
        Given by the user (``dataset.url`` / ``dataset.md5``); None takes the table's.

    Returns
    -------
    url, md5 : str or None
        For a name of :data:`BEIR_COLLECTIONS` its official URL and md5; for another
        name what was given (an archive without a URL cannot be downloaded).

    Raises
    ------
    SourceMismatchError
        ``name`` is in the table and ``url`` or ``md5`` is another archive's: the
        downloaded data would not be the collection the results are labelled with.
    """
    known = BEIR_COLLECTIONS.get(name)
    if known is None:
        for other in BEIR_COLLECTIONS.values():
            if url == other.url or (md5 is not None and md5.lower() == other.md5):
                raise SourceMismatchError(
                    f"dataset.name={name!r} with {other.name}'s archive "
                    f"({'url ' + url if url == other.url else 'md5 ' + str(md5)}): the data "
                    f"would be {other.name} labelled {name}; use dataset.name={other.name}"
                )
        return url, md5
    if url is not None and url != known.url:
        raise SourceMismatchError(
            f"dataset.name={name!r} with dataset.url={url!r}: {name} is downloaded from "
            f"{known.url} only (leave dataset.url null, or use dataset=local for other data)"
        )
    if md5 is not None and md5.lower() != known.md5:
        raise SourceMismatchError(
            f"dataset.name={name!r} with dataset.md5={md5}: {name}'s archive has md5 "
            f"{known.md5} (leave dataset.md5 null)"
        )
    return known.url, known.md5


def collection_names(name: str | list[str] | None, path: str | None) -> list[str]:
    """The collections of a ``dataset`` config: its ``name`` (one or a list), or the
    folder name of ``path``.

    Raises
    ------
    ValueError
        No name, a name that is not a plain folder name, a repeated name, or
        ``path`` with several names.
    """
    if path:
        if isinstance(name, (list, tuple)) or (name is not None and not isinstance(name, str)):
            raise ValueError(f"dataset.path={path} reads one collection, got name={name!r}")
        names = [name or PurePath(str(path).rstrip("/")).name]
    elif name is None:
        raise ValueError("dataset.name is required (a BEIR name, a list, or dataset.path)")
    else:
        names = [name] if isinstance(name, str) else [str(n) for n in name]
    if not names:
        raise ValueError("dataset.name: empty list")
    for n in names:
        if not n or n in (".", "..") or "/" in n or "\\" in n:
            raise ValueError(f"dataset.name must be plain folder names, got {n!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"dataset.name={names}: a collection is listed twice")
    return names
