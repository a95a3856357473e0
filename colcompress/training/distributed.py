"""Cross-device in-batch negatives: all-gather that keeps the autograd graph.

Under DDP each rank scores its B local queries against the documents of *every*
rank, so the negative pool grows with the number of devices (as in the paper's
code). The gathered tensor is differentiable: the backward pass sums, over all
ranks, the gradient that reached each rank's slice and hands every rank the sum
for its own slice. With DDP's gradient averaging, the parameter gradients are then
exactly those of one process computing the mean loss over the concatenated batch.

Every function here is the identity (offset 0) when ``torch.distributed`` is not
initialised or the world has one rank, so a single-device run pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def world(group: Any = None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` outside a distributed run."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group=group), dist.get_world_size(group=group)


class _AllGather(torch.autograd.Function):
    """Stack equal-shaped tensors of all ranks; backward all-reduces and keeps the own slice."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        rank, size = world(group)
        ctx.rank = rank
        parts = [torch.empty_like(tensor) for _ in range(size)]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # Every rank's loss may depend on this rank's slice: sum their gradients.
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.rank], None


def _gather_ints(values: tuple[int, ...], device: torch.device, group: Any) -> list[list[int]]:
    """All ranks' copies of a few integers (shapes), in rank order."""
    _, size = world(group)
    local = torch.tensor(values, device=device, dtype=torch.long)
    parts = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(parts, local, group=group)
    return [p.tolist() for p in parts]


def _pad_dim(tensor: Tensor, dim: int, length: int, value: float = 0.0) -> Tensor:
    """Pad ``tensor`` at the end of ``dim`` up to ``length`` (differentiably)."""
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - dim - 1) + [0, missing]
    return F.pad(tensor, pad, value=value)


def gather_with_grad(tensor: Tensor, group: Any = None) -> Tensor:
    """Concatenate every rank's ``tensor`` along dim 0, differentiably.

    Parameters
    ----------
    tensor : Tensor[B_r, ...]
        This rank's rows; B_r may differ between ranks (e.g. a short last batch),
        the other dimensions must agree.
    group : ProcessGroup or None
        The process group (None: the default world).

    Returns
    -------
    Tensor[sum_r B_r, ...]
        Rank 0's rows first, then rank 1's, ... . Gradients reaching any rank's copy
        of this rank's rows flow back into ``tensor``; the other ranks' rows receive
        their gradients on their own ranks.
    """
    _, size = world(group)
    if size == 1:
        return tensor
    counts = [c for (c,) in _gather_ints((tensor.shape[0],), tensor.device, group)]
    return _gather_rows(tensor, counts, group)


def _gather_rows(tensor: Tensor, counts: list[int], group: Any) -> Tensor:
    """:func:`gather_with_grad` when every rank's row count is known."""
    stacked = _AllGather.apply(_pad_dim(tensor, 0, max(counts)), group)  # [W, max B, ...]
    return torch.cat([stacked[r, :count] for r, count in enumerate(counts)])


@dataclass
class GatheredDocs:
    """Padded document vectors of all ranks.

    Attributes
    ----------
    vectors : Tensor[sum_r B_r, M_max, D]
        Every rank's documents, padded to the longest ``M`` of any rank.
    mask : Tensor[sum_r B_r, M_max]
        Bool, True for real vectors; padding is masked.
    offset : int
        Row of this rank's first document in ``vectors``.
    counts : list of int
        Documents per rank, in rank order.
    """

    vectors: Tensor
    mask: Tensor
    offset: int
    counts: list[int]


def gather_padded(vectors: Tensor, mask: Tensor, group: Any = None) -> GatheredDocs:
    """All-gather variable-length multi-vector documents with gradients.

    Parameters
    ----------
    vectors : Tensor[B, M, D]
        This rank's document vectors (M may differ between ranks).
    mask : Tensor[B, M]
        True (or 1) for real vectors.
    group : ProcessGroup or None

    Returns
    -------
    GatheredDocs
        ``vectors[sum_r B_r, M_max, D]`` (differentiable w.r.t. the local rows),
        ``mask[sum_r B_r, M_max]``, this rank's row ``offset`` and the per-rank
        ``counts``. Outside a distributed run: the inputs, offset 0.
    """
    if vectors.shape[:2] != mask.shape:
        raise ValueError(
            f"vectors [B, M, D] and mask [B, M] disagree: {tuple(vectors.shape)} vs "
            f"{tuple(mask.shape)}"
        )
    rank, size = world(group)
    if size == 1:
        return GatheredDocs(vectors, mask.bool(), 0, [vectors.shape[0]])
    shapes = _gather_ints(tuple(mask.shape), vectors.device, group)
    counts = [b for b, _ in shapes]
    longest = max(m for _, m in shapes)
    all_vectors = _gather_rows(_pad_dim(vectors, 1, longest), counts, group)
    all_mask = _gather_rows(_pad_dim(mask.to(torch.uint8), 1, longest), counts, group).bool()
    return GatheredDocs(all_vectors, all_mask, sum(counts[:rank]), counts)


def widen_local_columns(local: Tensor | None, offset: int, total: int) -> Tensor | None:
    """Place a ``[B, B_local]`` column block at ``offset`` of a ``[B, total]`` matrix.

    Used for the known-false-negative mask of the local documents: documents of
    other ranks are not masked (their ids are not known here).

    Parameters
    ----------
    local : Tensor[B, C] or None
        Bool mask over this rank's C documents.
    offset : int
        Column of this rank's first document among all ranks' documents.
    total : int
        Documents of all ranks.

    Returns
    -------
    Tensor[B, total] or None
        False outside the local block; None when ``local`` is None.
    """
    if local is None:
        return None
    out = local.new_zeros((local.shape[0], total))
    out[:, offset : offset + local.shape[1]] = local
    return out
