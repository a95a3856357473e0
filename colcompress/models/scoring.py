"""Late-interaction scoring: batched, masked MaxSim."""

from __future__ import annotations

import torch
from torch import Tensor

_NEG = -1e4


def maxsim(
    queries: Tensor,
    query_mask: Tensor,
    docs: Tensor,
    doc_mask: Tensor,
    relu: bool = False,
) -> Tensor:
    """Score every query against every document with masked MaxSim.

    ``score(q, d) = sum_i max_j <q_i, d_j>`` over unmasked query tokens ``i`` and
    unmasked document vectors ``j``.

    Parameters
    ----------
    queries : Tensor[Bq, Lq, D]
    query_mask : Tensor[Bq, Lq]
        True (or 1) for real query tokens.
    docs : Tensor[Bd, Ld, D]
    doc_mask : Tensor[Bd, Ld]
        True (or 1) for real document vectors; masked rows never win a max.
    relu : bool
        ColBERT_P scoring: clamp every dot product at 0 before the max.

    Returns
    -------
    Tensor[Bq, Bd]
        The score matrix. A document with no unmasked vector scores 0.
    """
    sim = torch.einsum("qid,bjd->qbij", queries, docs)  # [Bq, Bd, Lq, Ld]
    if relu:
        sim = sim.clamp_min(0)
    sim = sim.masked_fill(~doc_mask.bool()[None, :, None, :], _NEG)
    best = sim.max(dim=-1).values  # [Bq, Bd, Lq]
    best = torch.where(best <= _NEG / 2, torch.zeros_like(best), best)
    return (best * query_mask.to(best.dtype)[:, None, :]).sum(-1)


def maxsim_pairwise(
    queries: Tensor,
    query_mask: Tensor,
    docs: Tensor,
    doc_mask: Tensor,
    relu: bool = False,
) -> Tensor:
    """MaxSim for aligned pairs: query ``b`` against document ``b`` only.

    Parameters
    ----------
    queries : Tensor[B, Lq, D]
    query_mask : Tensor[B, Lq]
    docs : Tensor[B, Ld, D]
    doc_mask : Tensor[B, Ld]
    relu : bool
        ColBERT_P scoring (see :func:`maxsim`).

    Returns
    -------
    Tensor[B]
    """
    sim = torch.einsum("bid,bjd->bij", queries, docs)
    if relu:
        sim = sim.clamp_min(0)
    sim = sim.masked_fill(~doc_mask.bool()[:, None, :], _NEG)
    best = sim.max(dim=-1).values
    best = torch.where(best <= _NEG / 2, torch.zeros_like(best), best)
    return (best * query_mask.to(best.dtype)).sum(-1)
