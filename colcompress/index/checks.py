"""Checks of the input every index takes: documents to build from, queries to search."""

from __future__ import annotations

from torch import Tensor


def validate_documents(doc_vectors: list[Tensor], ids: list[str], where: str) -> int:
    """Check the input of :meth:`Index.build` and return the vector dimension.

    Parameters
    ----------
    doc_vectors : list of Tensor[m_i, D]
        One floating tensor per document, ``m_i >= 1``, the same ``D`` for all.
    ids : list of str
        Unique document ids aligned with ``doc_vectors``.
    where : str
        Name of the caller, put at the start of every error message.

    Returns
    -------
    int
        The shared vector dimension ``D``.

    Raises
    ------
    ValueError
        On an empty collection, a length mismatch, a non-2-D or empty document,
        mismatched dimensions, non-string or duplicate ids.
    TypeError
        On a non-tensor or non-floating document.
    """
    if len(doc_vectors) == 0:
        raise ValueError(f"{where}: doc_vectors is empty; expected at least one document")
    if len(ids) != len(doc_vectors):
        raise ValueError(
            f"{where}: got {len(doc_vectors)} documents but {len(ids)} ids; "
            "expected one id per document"
        )
    dim = -1
    for i, doc in enumerate(doc_vectors):
        if not isinstance(doc, Tensor) or not doc.is_floating_point():
            raise TypeError(f"{where}: doc_vectors[{i}] must be a floating torch.Tensor[m_i, D]")
        if doc.dim() != 2:
            raise ValueError(
                f"{where}: doc_vectors[{i}] has shape {tuple(doc.shape)}; expected 2-D [m_i, D]"
            )
        if doc.shape[0] == 0:
            raise ValueError(
                f"{where}: doc_vectors[{i}] (id {ids[i]!r}) has 0 vectors; "
                "every document needs m_i >= 1"
            )
        if i == 0:
            dim = int(doc.shape[1])
        elif doc.shape[1] != dim:
            raise ValueError(
                f"{where}: doc_vectors[{i}] has dimension {doc.shape[1]}; "
                f"expected D={dim} like doc_vectors[0]"
            )
    seen: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, str):
            raise ValueError(f"{where}: ids[{i}] is {type(doc_id).__name__}; expected str")
        if doc_id in seen:
            raise ValueError(
                f"{where}: duplicate id {doc_id!r} at positions {seen[doc_id]} and {i}; "
                "ids must be unique"
            )
        seen[doc_id] = i
    return dim


def validate_queries(queries: list[Tensor], dim: int, k: int, where: str) -> None:
    """Check the input of :meth:`Index.search`.

    Parameters
    ----------
    queries : list of Tensor[l_q, D]
        One floating tensor per query, ``l_q >= 1``.
    dim : int
        The index's vector dimension ``D``.
    k : int
        Requested results per query, ``k >= 1``.
    where : str
        Name of the caller, put at the start of every error message.

    Raises
    ------
    ValueError
        On ``k < 1``, a non-2-D or empty query, or a dimension other than ``dim``.
    TypeError
        On a non-tensor or non-floating query.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{where}: k={k!r}; expected an int >= 1")
    for i, query in enumerate(queries):
        if not isinstance(query, Tensor) or not query.is_floating_point():
            raise TypeError(f"{where}: queries[{i}] must be a floating torch.Tensor[l_q, D]")
        if query.dim() != 2 or query.shape[0] == 0 or query.shape[1] != dim:
            raise ValueError(
                f"{where}: queries[{i}] has shape {tuple(query.shape)}; "
                f"expected [l_q >= 1, D={dim}]"
            )
