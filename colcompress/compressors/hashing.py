"""Pseudo-random numbers that depend only on a document and a seed.

Random choices inside a compressor (AGC's random centroids, k-means++ seeding) must
not depend on which other documents share the batch, on the padding width, or on
the epoch: otherwise a document's index vectors change with the encoding batch
size. Keys are hashed from the document's token ids; draws are hashed from the key
and a counter, in int64 arithmetic on the tokens' device.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK31 = 0x7FFFFFFF


def mix(x: Tensor) -> Tensor:
    """Integer hash of non-negative 31-bit values (int64 arithmetic, no overflow)."""
    for _ in range(3):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK31
    return x


def document_keys(input_ids: Tensor, mask: Tensor, seed: int) -> Tensor:
    """One 31-bit key per sequence from its real tokens (ids and positions) and ``seed``.

    Parameters
    ----------
    input_ids : Tensor[B, N]
    mask : Tensor[B, N]
        Bool, True for the tokens that identify the sequence.
    seed : int

    Returns
    -------
    Tensor[B]
        int64.
    """
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    tokens = mix((input_ids.long() & _MASK31) ^ mix(positions + 1)[None, :])
    return mix(((tokens * mask.long()).sum(1) & _MASK31) ^ (seed & _MASK31))


def uniform(keys: Tensor, counters: Tensor) -> Tensor:
    """Draws in ``[0, 1)``: ``out[b, j]`` from ``keys[b]`` and ``counters[j]``.

    Parameters
    ----------
    keys : Tensor[B]
        From :func:`document_keys`.
    counters : Tensor[J]
        Non-negative integers (e.g. token positions or step numbers).

    Returns
    -------
    Tensor[B, J]
        float32.
    """
    draws = mix(keys[:, None] ^ mix(counters.long() + 0x9E3779B)[None, :])
    return draws.double().div(2**31).float()
