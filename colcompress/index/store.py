"""Document vectors on disk in float16 chunks, read back through memory maps.

A :class:`VectorStore` is a folder::

    chunk-00000.npy   float16 [rows, D]: the vectors of the chunk's documents, one after
    chunk-00001.npy   another in document order
    ...
    manifest.json     format, dim, and per chunk its file, document ids and lengths

:class:`VectorStoreWriter` writes every chunk atomically (a temporary file renamed into
place) and the manifest last, so a store whose writing was interrupted has no manifest
and :meth:`VectorStore.open` refuses it. Readers map one chunk at a time, so what a
pass over the store keeps in memory is bounded by the size of a chunk, not of the
corpus.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch import Tensor

from colcompress.atomic import atomic_path, write_text_atomic
from colcompress.index.checks import validate_documents

MANIFEST = "manifest.json"
FORMAT = "colcompress.vector_store/1"
_CHUNK = "chunk-{:05d}.npy"


def _chunk_files(path: Path) -> list[Path]:
    return sorted(path.glob("chunk-*.npy"))


class VectorStoreWriter:
    """Write a :class:`VectorStore` chunk by chunk.

    An existing store in ``path`` is removed first (its manifest before its chunks),
    so a rewrite that is interrupted never leaves a manifest describing other files.

    Parameters
    ----------
    path : str or Path
        The store's folder (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"VectorStoreWriter: {self.path} is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / MANIFEST).unlink(missing_ok=True)
        for old in _chunk_files(self.path):
            old.unlink()
        self._chunks: list[dict[str, Any]] = []
        self._seen: dict[str, int] = {}
        self._dim: int | None = None

    def add(self, doc_vectors: Sequence[Tensor], ids: Sequence[str]) -> None:
        """Write one chunk.

        Parameters
        ----------
        doc_vectors : sequence of Tensor[m_i, D]
            The chunk's documents, padding removed (``m_i >= 1``); stored as float16.
        ids : sequence of str
            Their ids, unique across the whole store.

        Raises
        ------
        ValueError
            On an invalid document, a dimension other than the earlier chunks', or an
            id already in the store.
        """
        where = f"VectorStoreWriter.add (chunk {len(self._chunks)})"
        dim = validate_documents(list(doc_vectors), list(ids), where)
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"{where}: vectors have D={dim}; earlier chunks have D={self._dim}")
        for doc_id in ids:
            if doc_id in self._seen:
                raise ValueError(
                    f"{where}: id {doc_id!r} is already in chunk {self._seen[doc_id]}; "
                    "ids must be unique"
                )
        rows = torch.cat([d.detach().to("cpu", torch.float16) for d in doc_vectors])
        name = _CHUNK.format(len(self._chunks))
        with atomic_path(self.path / name) as tmp, tmp.open("wb") as f:
            np.save(f, rows.numpy())
        self._seen.update(dict.fromkeys(ids, len(self._chunks)))
        self._dim = dim
        self._chunks.append(
            {"file": name, "ids": list(ids), "lengths": [int(d.shape[0]) for d in doc_vectors]}
        )

    def finish(self) -> VectorStore:
        """Write the manifest and open the finished store.

        Raises
        ------
        ValueError
            When no chunk was written.
        """
        if not self._chunks:
            raise ValueError(f"VectorStoreWriter.finish: no chunk written to {self.path}")
        manifest = {"format": FORMAT, "dim": self._dim, "chunks": self._chunks}
        write_text_atomic(json.dumps(manifest), self.path / MANIFEST)
        return VectorStore.open(self.path)


class VectorStore(Sequence[Tensor]):
    """A finished store, opened read-only; also a sequence of per-document vectors.

    ``store[i]`` is document ``i``'s vectors as a float32 ``Tensor[m_i, D]`` (the stored
    float16 values); it maps the document's chunk and keeps that one chunk mapped
    until another is needed. :meth:`chunk` and :meth:`gather` give float16 tensors for
    indexing.

    Attributes
    ----------
    path : Path
    dim : int
        D, the vector dimension.
    ids : list of str
        Document ids in store order.
    lengths : Tensor[n]
        Vectors per document (int64).
    chunk_starts : list of int
        Index of the first document of each chunk.
    """

    def __init__(
        self,
        path: Path,
        dim: int,
        files: list[str],
        ids: list[str],
        lengths: Tensor,
        starts: list[int],
    ) -> None:
        self.path = path
        self.dim = dim
        self.ids = ids
        self.lengths = lengths
        self.chunk_starts = starts
        self._files = files
        offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=offsets[1:])
        self._offsets = offsets  # row of document i = offsets[i] - offsets[chunk start]
        self._mapped: tuple[int, np.ndarray] | None = None

    @classmethod
    def open(cls, path: str | Path) -> VectorStore:
        """Open the store in ``path`` and check it against its chunk files.

        Raises
        ------
        FileNotFoundError
            Naming the manifest when it is missing (an unfinished or interrupted
            store), or a chunk file the manifest lists.
        ValueError
            Naming the file when the manifest is not valid JSON, lacks a key, or a
            chunk's shape or dtype disagrees with it.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"VectorStore: {manifest_path} not found; a store's manifest is written "
                "last, so this folder is not a finished store (its writing was "
                "interrupted, or it was never one)"
            )
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format is {manifest.get('format')!r}; expected {FORMAT!r}")
            dim = int(manifest["dim"])
            chunks = [
                (str(c["file"]), list(c["ids"]), [int(n) for n in c["lengths"]])
                for c in manifest["chunks"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(
                f"VectorStore: {manifest_path} is not a valid manifest: {detail}"
            ) from None
        ids: list[str] = []
        lengths: list[int] = []
        starts: list[int] = []
        for file, chunk_ids, chunk_lengths in chunks:
            chunk_path = path / file
            if not chunk_path.is_file():
                raise FileNotFoundError(
                    f"VectorStore: {chunk_path}, listed in {manifest_path}, is missing"
                )
            if len(chunk_ids) != len(chunk_lengths) or not chunk_ids or min(chunk_lengths) < 1:
                raise ValueError(
                    f"VectorStore: {manifest_path}: chunk {file} has {len(chunk_ids)} ids and "
                    f"{len(chunk_lengths)} lengths; expected as many, at least one, all >= 1"
                )
            array = np.load(chunk_path, mmap_mode="r")
            expected = (sum(chunk_lengths), dim)
            if array.dtype != np.float16 or array.shape != expected:
                raise ValueError(
                    f"VectorStore: {chunk_path} holds {array.dtype} {array.shape}; "
                    f"{manifest_path} expects float16 {expected}"
                )
            starts.append(len(ids))
            ids.extend(chunk_ids)
            lengths.extend(chunk_lengths)
        if len(set(ids)) != len(ids):
            raise ValueError(f"VectorStore: {manifest_path} lists a document id twice")
        files = [file for file, _, _ in chunks]
        return cls(path, dim, files, ids, torch.tensor(lengths, dtype=torch.long), starts)

    @property
    def num_chunks(self) -> int:
        return len(self._files)

    @property
    def num_vectors(self) -> int:
        """Total number of stored vectors."""
        return int(self._offsets[-1])

    def chunk_range(self, c: int) -> range:
        """Store indices of the documents of chunk ``c``."""
        end = self.chunk_starts[c + 1] if c + 1 < self.num_chunks else len(self.ids)
        return range(self.chunk_starts[c], end)

    def size_bytes(self) -> int:
        """Bytes of the chunk files and the manifest."""
        return sum((self.path / f).stat().st_size for f in [*self._files, MANIFEST])

    def _map(self, c: int) -> np.ndarray:
        """Chunk ``c`` as a copy-on-write memory map (writable views, file untouched)."""
        return np.load(self.path / self._files[c], mmap_mode="c")

    def chunk(self, c: int) -> list[Tensor]:
        """The documents of chunk ``c`` as float16 ``Tensor[m_i, D]`` views of its map.

        The map stays open while any of the views lives; nothing is copied.
        """
        docs = self.chunk_range(c)
        rows = torch.from_numpy(self._map(c))
        return list(torch.split(rows, self.lengths[docs.start : docs.stop].tolist()))

    def gather(self, positions: Sequence[int]) -> list[Tensor]:
        """Documents at store ``positions`` (any order) as float16 ``Tensor[m_i, D]`` copies.

        Each chunk holding one of them is mapped once, copied from and released.
        """
        out: list[Tensor | None] = [None] * len(positions)
        by_chunk: dict[int, list[int]] = {}
        for slot, p in enumerate(positions):
            by_chunk.setdefault(self._chunk_of(p), []).append(slot)
        for c, slots in by_chunk.items():
            rows = self._map(c)
            base = int(self._offsets[self.chunk_starts[c]])
            for slot in slots:
                start, end = self._row_span(positions[slot], base)
                out[slot] = torch.from_numpy(np.array(rows[start:end]))
            del rows
        return out  # type: ignore[return-value]

    def _chunk_of(self, position: int) -> int:
        if not 0 <= position < len(self.ids):
            raise IndexError(
                f"VectorStore: document {position} out of range ({len(self.ids)} documents)"
            )
        return bisect.bisect_right(self.chunk_starts, position) - 1

    def _row_span(self, position: int, base: int) -> tuple[int, int]:
        return int(self._offsets[position]) - base, int(self._offsets[position + 1]) - base

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Tensor: ...

    @overload
    def __getitem__(self, i: slice) -> list[Tensor]: ...

    def __getitem__(self, i: int | slice) -> Tensor | list[Tensor]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        c = self._chunk_of(i)
        if self._mapped is None or self._mapped[0] != c:
            self._mapped = (c, self._map(c))
        base = int(self._offsets[self.chunk_starts[c]])
        start, end = self._row_span(i, base)
        return torch.from_numpy(self._mapped[1][start:end].astype(np.float32))

    def __iter__(self) -> Iterator[Tensor]:
        for c in range(self.num_chunks):
            for doc in self.chunk(c):
                yield doc.float()
