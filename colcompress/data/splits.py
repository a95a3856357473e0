"""Document-disjoint splits of a collection that ships one qrels file.

Image-caption collections such as Flickr8k judge every caption (query) against its
one image (document); a train/test split must keep all captions of an image on the
image's side, and each side retrieves among its own documents only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from colcompress.data.beir import BeirData, DataFormatError, load_beir, load_beir_splits

__all__ = ["load_splits", "split_by_documents"]


def load_splits(
    path: str | Path,
    splits: Sequence[str],
    document_split: Mapping[str, Any] | None = None,
    allow_unknown_ids: bool = False,
) -> dict[str, BeirData]:
    """The named splits of one collection: its qrels files, or parts of a document split.

    Parameters
    ----------
    path : str or Path
        The dataset directory.
    splits : sequence of str
        Split names: ``qrels/<split>.tsv`` files, or parts of ``document_split``.
    document_split : mapping or None
        ``{"source": qrels split, "sizes": {part: documents}, "seed": int}`` (the
        ``dataset.document_split`` setting): the parts of :func:`split_by_documents`
        of the source split, every part returned.
    allow_unknown_ids : bool
        Drop qrels rows naming unknown ids with a counted warning instead of raising.

    Returns
    -------
    dict of str to BeirData
        At least the requested splits.

    Raises
    ------
    ValueError
        A requested split is not a part of ``document_split``.
    """
    if document_split is None:
        return load_beir_splits(path, list(splits), allow_unknown_ids)
    sizes = dict(document_split["sizes"])
    unknown = [s for s in splits if s not in sizes]
    if unknown:
        raise ValueError(
            f"dataset split {unknown} is not a part of dataset.document_split "
            f"(parts: {list(sizes)})"
        )
    whole = load_beir(path, document_split["source"], allow_unknown_ids)
    return split_by_documents(whole, sizes, int(document_split["seed"]))


def split_by_documents(data: BeirData, sizes: Mapping[str, int], seed: int) -> dict[str, BeirData]:
    """Partition a collection's documents into named parts; queries follow their documents.

    The document ids, sorted, are shuffled with ``random.Random(seed)`` and cut into
    consecutive parts of ``sizes`` (in the order given). Each query goes to the part
    holding the documents it judges.

    Parameters
    ----------
    data : BeirData
        The whole collection (every query judged in ``data.qrels``).
    sizes : mapping of str to int
        Documents per part, e.g. ``{"train": 800, "test": 200}``; they must add up to
        the corpus size.
    seed : int
        Seed of the shuffle: the same seed gives the same parts.

    Returns
    -------
    dict of str to BeirData
        One collection per part (``split`` = its name), with its own corpus, queries
        and qrels.

    Raises
    ------
    DataFormatError
        The sizes do not add up to the corpus, or a query judges documents of two
        parts (the split cannot keep it on one side).
    """
    if not sizes or any(int(n) < 1 for n in sizes.values()):
        raise DataFormatError(
            f"dataset.document_split.sizes={dict(sizes)}: expected positive document "
            "counts by split name"
        )
    total = sum(int(n) for n in sizes.values())
    if total != len(data.corpus):
        raise DataFormatError(
            f"dataset.document_split.sizes={dict(sizes)} add up to {total} documents, but "
            f"{data.name} has {len(data.corpus)}"
        )
    ids = sorted(data.corpus)
    random.Random(seed).shuffle(ids)
    part_of: dict[str, str] = {}
    start = 0
    for name, count in sizes.items():
        part_of.update((docid, name) for docid in ids[start : start + int(count)])
        start += int(count)
    queries: dict[str, list[str]] = {name: [] for name in sizes}
    for qid in data.queries:
        parts = {part_of[docid] for docid in data.qrels.get(qid, {})}
        if len(parts) > 1:
            raise DataFormatError(
                f"{data.name}: query {qid!r} judges documents of the splits {sorted(parts)}; "
                "a document split needs every query's documents on one side"
            )
        if parts:
            queries[parts.pop()].append(qid)
    return {
        name: BeirData(
            corpus={d: doc for d, doc in data.corpus.items() if part_of[d] == name},
            queries={q: data.queries[q] for q in queries[name]},
            qrels={q: dict(data.qrels[q]) for q in queries[name]},
            name=data.name,
            split=name,
        )
        for name in sizes
    }
