"""Encode a corpus or query set with a model, in length-sorted batches."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from colcompress.compressors.base import Compressed
from colcompress.index.store import VectorStore, VectorStoreWriter
from colcompress.models.colbert import ColBERT

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """Per-item vectors in input order.

    Attributes
    ----------
    vectors : list of Tensor[m_i, D], or VectorStore
        float32 on the CPU, padding removed; a :class:`VectorStore` (float16 on disk,
        read back as float32) when the corpus was encoded chunk by chunk
        (:func:`encode_to_store`).
    tokens : Tensor[n]
        Scorable tokens of each item before compression: the vectors the
        uncompressed model keeps (special tokens counted, skipped punctuation not).
    seconds : float
    """

    vectors: Sequence[Tensor]
    tokens: Tensor
    seconds: float

    @property
    def num_vectors(self) -> int:
        if isinstance(self.vectors, VectorStore):
            return self.vectors.num_vectors
        return sum(v.shape[0] for v in self.vectors)


def _autocast(device: torch.device, precision: str | None) -> object:
    if device.type == "cuda" and precision in ("bf16", "bf16-mixed"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _length(item: Any) -> int:
    """Sort key of an input: a text's length; other document inputs (images of one
    size) all weigh the same and keep their order."""
    return len(item) if isinstance(item, str) else 0


@torch.no_grad()
def encode(
    model: ColBERT,
    texts: list[Any],
    is_query: bool,
    batch_size: int = 32,
    compress: bool = True,
    precision: str | None = None,
    desc: str = "encode",
    progress: bool = False,
) -> Encoded:
    """Encode texts into unpadded multi-vector representations.

    Texts are processed longest first so each batch pads little; results come
    back in input order.

    Parameters
    ----------
    model : ColBERT
        Used in eval mode on its current device.
    texts : list
        Query texts, or documents as ``model.document_input`` gives them.
    is_query : bool
        Encode as queries (else documents, compressed by the model's compressor).
    batch_size : int
    compress : bool
        Apply the compressor (documents, or queries when it applies to them).
    precision : str or None
        ``"bf16-mixed"`` runs the encoder under bf16 autocast on CUDA.
    desc : str
        Label of the progress bar.
    progress : bool
        Draw a tqdm bar (items done, rate, ETA) on stderr.
    """
    was_training = model.training
    model.eval()
    device = model.projection.weight.device
    tokenize: Callable[[list[Any]], Any] = (
        model.tokenize_queries if is_query else model.tokenize_documents
    )
    run: Callable[[Any, bool], Compressed] = (
        model.encode_queries if is_query else model.encode_documents
    )
    order = sorted(range(len(texts)), key=lambda i: -_length(texts[i]))
    vectors: list[Tensor | None] = [None] * len(texts)
    tokens = torch.zeros(len(texts), dtype=torch.long)
    start = time.perf_counter()
    bar = tqdm(
        total=len(order), desc=desc, unit="query" if is_query else "doc", disable=not progress
    )
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        batch = tokenize([texts[i] for i in idx]).to(device)
        with _autocast(device, precision):
            out = run(batch, compress)
        tokens[idx] = batch.mask.sum(1).cpu()
        for i, v in zip(idx, out.unpadded()):
            vectors[i] = v.float().cpu()
        bar.update(len(idx))
    bar.close()
    model.train(was_training)
    seconds = time.perf_counter() - start
    log.info("%s: %d encoded in %.1f s", desc, len(order), seconds)
    return Encoded(vectors, tokens, seconds)  # type: ignore[arg-type]


def encode_sharded(
    model: ColBERT,
    texts: list[Any],
    is_query: bool,
    batch_size: int = 32,
    precision: str | None = None,
    desc: str = "encode",
    rank: int = 0,
    world_size: int = 1,
    progress: bool = False,
) -> Encoded | None:
    """:func:`encode` split across data-parallel ranks, gathered on rank 0.

    Rank r encodes ``texts[r::world_size]``; ``torch.distributed.gather_object``
    brings the shards to rank 0, which reassembles them in input order. Every rank
    must call it (it is a collective when ``world_size > 1``).

    Returns
    -------
    Encoded or None
        The whole collection on rank 0 (``seconds`` is rank 0's wall time including
        the gather); None on the other ranks.
    """
    if world_size == 1:
        return encode(
            model, texts, is_query, batch_size, precision=precision, desc=desc, progress=progress
        )
    import torch.distributed as dist

    start = time.perf_counter()
    mine = encode(
        model,
        texts[rank::world_size],
        is_query,
        batch_size,
        precision=precision,
        desc=desc,
        progress=progress and rank == 0,
    )
    shards: list[tuple[list[Tensor], Tensor] | None] | None = (
        [None] * world_size if rank == 0 else None
    )
    dist.gather_object((mine.vectors, mine.tokens), shards, dst=0)
    if rank != 0:
        return None
    vectors: list[Tensor] = [torch.empty(0)] * len(texts)
    tokens = torch.zeros(len(texts), dtype=torch.long)
    for r, shard in enumerate(shards or []):
        shard_vectors, shard_tokens = shard  # type: ignore[misc]
        positions = list(range(r, len(texts), world_size))
        for i, v in zip(positions, shard_vectors, strict=True):
            vectors[i] = v
        tokens[positions] = shard_tokens
    log.info("%s: gathered %d items from %d ranks", desc, len(texts), world_size)
    return Encoded(vectors, tokens, time.perf_counter() - start)


def encode_to_store(
    model: ColBERT,
    texts: list[Any],
    ids: list[str],
    path: str | Path | None,
    chunk_docs: int,
    batch_size: int = 32,
    precision: str | None = None,
    desc: str = "encode",
    rank: int = 0,
    world_size: int = 1,
    progress: bool = False,
) -> Encoded | None:
    """Encode documents ``chunk_docs`` at a time into a :class:`VectorStore` at ``path``.

    Each chunk is encoded (split across data-parallel ranks and gathered on rank 0,
    as :func:`encode_sharded`), written to the store as float16 and dropped, so memory
    holds one chunk's vectors at a time. Every rank must call it.

    Parameters
    ----------
    model : ColBERT
    texts : list
        Documents as ``model.document_input`` gives them.
    ids : list of str
        Their ids, aligned with ``texts``.
    path : str, Path or None
        The store's folder, written by rank 0 (an old store there is replaced); the
        other ranks ignore it.
    chunk_docs : int
        Documents per chunk, >= 1.
    batch_size, precision, desc, rank, world_size, progress
        As :func:`encode_sharded`.

    Returns
    -------
    Encoded or None
        On rank 0, ``vectors`` is the finished store (in ``texts`` order) and
        ``seconds`` includes writing it; None on the other ranks.
    """
    if chunk_docs < 1:
        raise ValueError(f"encode_to_store: chunk_docs={chunk_docs}; expected >= 1")
    if len(ids) != len(texts):
        raise ValueError(f"encode_to_store: {len(texts)} documents but {len(ids)} ids")
    if rank == 0 and path is None:
        raise ValueError("encode_to_store: rank 0 needs the store's path")
    start = time.perf_counter()
    writer = VectorStoreWriter(path) if rank == 0 and path is not None else None
    tokens: list[Tensor] = []
    count = math.ceil(len(texts) / chunk_docs)
    for c, first in enumerate(range(0, len(texts), chunk_docs)):
        part = encode_sharded(
            model,
            texts[first : first + chunk_docs],
            False,
            batch_size,
            precision,
            f"{desc} {c + 1}/{count}",
            rank=rank,
            world_size=world_size,
            progress=progress,
        )
        if writer is not None and part is not None:
            writer.add(part.vectors, ids[first : first + chunk_docs])
            tokens.append(part.tokens)
    if writer is None:
        return None
    store = writer.finish()
    seconds = time.perf_counter() - start
    log.info("%s: %d documents in %d chunks written to %s", desc, len(texts), count, path)
    return Encoded(store, torch.cat(tokens), seconds)
