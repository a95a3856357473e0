"""Static token pruning baselines: first-k, tail, k-spacing, IDF and attention.

Every pruner keeps a subset of each sequence's *real* tokens (``states.mask``) and
returns them in their original order, padded and masked (:func:`select_tokens`).
The number kept per sequence is either fixed (``budget`` = k tokens, or all tokens
of a shorter sequence) or relative (``ratio`` r: ``ceil(n / r)`` tokens of an
``n``-token sequence, the same count as CRISP's relative clustering ``R_r``), see
:func:`target_counts`. When both are given the budget caps the relative count
(the :class:`~colcompress.compressors.base.Compressor` contract: at most
``budget`` vectors), so run relative pruning with ``budget=null``.

All pruners are usable post-hoc (``posthoc=True``: the model trains on every token
and prunes only at index time, the static-pruning setting) and inside training
(``posthoc=False``: the loss sees the pruned documents; gradients reach the kept
tokens). None of them applies to queries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import compact, rank_in_mask
from colcompress.models.states import TokenStates


def target_counts(lengths: Tensor, budget: int | None, ratio: float | None) -> Tensor:
    """How many vectors each sequence keeps.

    Parameters
    ----------
    lengths : Tensor[B]
        Real tokens per sequence.
    budget : int or None
        Fixed count k (and cap of the relative count when ``ratio`` is set).
    ratio : float or None
        Relative mode: ``ceil(n / ratio)`` per sequence.

    Returns
    -------
    Tensor[B]
        long, ``min(n, k)`` or ``min(ceil(n / r), k)``; never more than ``n``.

    Raises
    ------
    ValueError
        If neither ``budget`` nor ``ratio`` is set.
    """
    if ratio is not None:
        counts = torch.ceil(lengths.double() / ratio).long()
    elif budget is not None:
        counts = lengths.clone()
    else:
        raise ValueError(
            "a pruning compressor needs compressor.budget (fixed count) or "
            "compressor.ratio (relative count), both are null"
        )
    if budget is not None:
        counts = counts.clamp(max=budget)
    return torch.minimum(counts, lengths)


def select_tokens(vectors: Tensor, keep: Tensor) -> Compressed:
    """Gather the kept tokens of every sequence, in their original order.

    Parameters
    ----------
    vectors : Tensor[B, N, D]
    keep : Tensor[B, N]
        bool, the tokens to keep (already restricted to real tokens).

    Returns
    -------
    Compressed
        ``vectors[B, M, D]`` with ``M = max_b sum(keep[b])`` (at least 1), zero
        padding rows masked out. Gradients flow to the kept input rows.
    """
    order, kept = compact(keep)
    if order.shape[1] == 0:  # nothing kept anywhere: one masked slot
        order, kept = order.new_zeros(order.shape[0], 1), kept.new_zeros(kept.shape[0], 1)
    out = vectors.gather(1, order.unsqueeze(-1).expand(-1, -1, vectors.shape[-1]))
    return Compressed(out.masked_fill(~kept.unsqueeze(-1), 0.0), kept)


def top_scoring(scores: Tensor, mask: Tensor, counts: Tensor) -> Tensor:
    """Mark the ``counts[b]`` highest-scoring real tokens of every sequence.

    Ties are broken towards the earlier position, so the choice is deterministic.

    Parameters
    ----------
    scores : Tensor[B, N]
    mask : Tensor[B, N]
        bool, real tokens; padding is never selected.
    counts : Tensor[B]
        long, how many to keep (at most the number of real tokens).

    Returns
    -------
    Tensor[B, N]
        bool keep mask.
    """
    scores = scores.float().masked_fill(~mask, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    n = scores.shape[1]
    in_top = torch.arange(n, device=scores.device)[None, :] < counts[:, None]
    keep = torch.zeros_like(mask).scatter(1, order, in_top)
    return keep & mask


class TokenPruning(Compressor):
    """Keep a subset of each document's real tokens (see the module docstring).

    Subclasses implement :meth:`keep_mask`.

    Parameters
    ----------
    budget : int or None
        Fixed number of tokens k (cap of the relative count when ``ratio`` is set).
    posthoc : bool
        Prune only at index time (default) or also in training.
    ratio : float or None
        Relative mode: keep ``ceil(n / ratio)`` of an n-token document (>= 1).

    Raises
    ------
    ValueError
        For a ratio below 1, or when neither budget nor ratio is set.
    """

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = True,
        ratio: float | None = None,
    ) -> None:
        super().__init__(budget=budget, posthoc=posthoc)
        if ratio is not None and not ratio >= 1:
            raise ValueError(f"compressor.ratio must be >= 1 (keep ceil(n / ratio)), got {ratio}")
        if budget is None and ratio is None and self._needs_count():
            raise ValueError(
                f"{type(self).__name__} needs compressor.budget (keep k tokens) or "
                "compressor.ratio (keep ceil(n / ratio)); both are null"
            )
        self.ratio = ratio

    def _needs_count(self) -> bool:
        """Whether a budget or ratio is required to know how many tokens to keep."""
        return True

    def counts(self, mask: Tensor) -> Tensor:
        """Tokens kept per sequence, ``Tensor[B]`` (see :func:`target_counts`)."""
        return target_counts(mask.sum(1), self.budget, self.ratio)

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        """Which tokens to keep, ``Tensor[B, N]`` bool (subset of ``states.mask``)."""
        raise NotImplementedError

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Prune ``vectors[B, N, D]`` to the kept tokens, ``Compressed[B, M, D]``."""
        return select_tokens(vectors, self.keep_mask(vectors, states))


class FirstKPruning(TokenPruning):
    """Keep the first k real tokens (ColBERT's own truncation, as a baseline)."""

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        mask = states.mask.bool()
        ranks = rank_in_mask(mask)
        return mask & (ranks < self.counts(mask)[:, None])


class TailPruning(TokenPruning):
    """Keep the last k real tokens (CRISP's tail-pruning baseline).

    The last real tokens of a BERT document include its ``[SEP]``.
    """

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        mask = states.mask.bool()
        ranks, lengths = rank_in_mask(mask), mask.sum(1)
        return mask & (ranks >= (lengths - self.counts(mask))[:, None])


class KSpacingPruning(TokenPruning):
    """Keep every s-th real token (CRISP's k-spacing baseline).

    Two modes:

    - ``spacing`` s set: keep the real tokens at ranks ``0, s, 2s, ...`` (offset 0:
      the first real token, ``[CLS]``, is always kept), i.e. ``ceil(n / s)`` tokens,
      the count of CRISP's ``R_s``. With a budget, only the first ``budget`` of them.
    - ``spacing`` null: keep ``c = min(budget, n)`` evenly spaced tokens, at ranks
      ``floor(i * n / c)`` for ``i = 0 .. c - 1`` (again starting at the first token).

    Parameters
    ----------
    budget : int or None
    posthoc : bool
    spacing : int or None
        Keep every ``spacing``-th token (>= 1).
    """

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = True,
        spacing: int | None = None,
    ) -> None:
        if spacing is not None and (int(spacing) != spacing or spacing < 1):
            raise ValueError(f"compressor.spacing must be a positive integer, got {spacing}")
        # set first: TokenPruning's constructor asks _needs_count() whether a budget is due
        self.spacing = None if spacing is None else int(spacing)
        super().__init__(budget=budget, posthoc=posthoc, ratio=None)

    def _needs_count(self) -> bool:
        return self.spacing is None

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        mask = states.mask.bool()
        ranks, lengths = rank_in_mask(mask), mask.sum(1)
        if self.spacing is not None:
            keep = mask & (ranks % self.spacing == 0)
            if self.budget is not None:
                keep &= ranks // self.spacing < self.budget
            return keep
        counts = target_counts(lengths, self.budget, None)[:, None]
        n = lengths[:, None]
        # the smallest i with floor(i * n / c) >= rank; kept iff it hits the rank exactly
        i = (ranks * counts + n - 1) // n.clamp(min=1)
        return mask & (i < counts) & ((i * n) // counts.clamp(min=1) == ranks)


class IDFPruning(TokenPruning):
    """Keep the k tokens whose *token ids* have the highest corpus IDF.

    ``idf(t) = log((N + 1) / (df(t) + 1)) + 1`` over the N documents given to
    :meth:`fit_idf` (only the ranking matters: any decreasing function of the
    document frequency selects the same tokens). Ties go to the earlier token.

    Call :meth:`fit_idf` with the tokenised corpus (the same document tokenisation
    the encoder sees, special tokens included) or :meth:`set_idf` with a table
    **before encoding documents for the index**; encoding in eval mode without a
    table raises. In training mode without a table, IDF is estimated from the
    documents of the current batch (each row one document) -- a noisy stand-in
    that keeps ``posthoc=False`` runs possible; fit the table on the training
    corpus first for a faithful in-training variant.

    Parameters
    ----------
    budget, posthoc, ratio
        See :class:`TokenPruning`.
    """

    needs_corpus_idf = True

    idf: Tensor

    def __init__(
        self,
        budget: int | None = None,
        posthoc: bool = True,
        ratio: float | None = None,
    ) -> None:
        super().__init__(budget=budget, posthoc=posthoc, ratio=ratio)
        # not persistent: its size depends on the corpus; refit before indexing
        self.register_buffer("idf", torch.zeros(0), persistent=False)
        self.unseen_idf = 0.0

    @property
    def idf_fitted(self) -> bool:
        """Whether a corpus IDF table is set."""
        return self.idf.numel() > 0

    def fit_idf(
        self, doc_token_id_lists: Iterable[Sequence[int]], vocab_size: int | None = None
    ) -> None:
        """Compute the IDF table from a tokenised corpus.

        Parameters
        ----------
        doc_token_id_lists : iterable of sequences of int
            One token-id sequence per document.
        vocab_size : int or None
            Table size; default ``max id + 1``. Ids beyond it score as unseen.
        """
        df: dict[int, int] = {}
        num_docs = 0
        for ids in doc_token_id_lists:
            num_docs += 1
            for t in set(int(i) for i in ids):
                df[t] = df.get(t, 0) + 1
        if num_docs == 0:
            raise ValueError("fit_idf got no documents")
        size = vocab_size if vocab_size is not None else max(df, default=-1) + 1
        counts = torch.zeros(size, dtype=torch.float64)
        for t, c in df.items():
            if t < 0 or t >= size:
                raise ValueError(f"token id {t} outside the vocabulary of size {size}")
            counts[t] = c
        table = torch.log((num_docs + 1) / (counts + 1)) + 1
        self.set_idf(table.float(), unseen=math.log(num_docs + 1) + 1)

    def set_idf(self, idf: Tensor, unseen: float | None = None) -> None:
        """Set the IDF table directly.

        Parameters
        ----------
        idf : Tensor[V]
            IDF per token id.
        unseen : float or None
            IDF of ids ``>= V``; default the table's maximum.
        """
        if idf.dim() != 1 or idf.numel() == 0:
            raise ValueError(f"set_idf expects a non-empty 1-d Tensor[V], got {tuple(idf.shape)}")
        self.idf = idf.detach().float().to(self.idf.device)
        self.unseen_idf = float(idf.max()) if unseen is None else float(unseen)

    def token_idf(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """IDF of every token, ``Tensor[B, N]`` (in-batch estimate when unfitted)."""
        if self.idf_fitted:
            table = self.idf.to(input_ids.device)
            inside = input_ids < table.numel()
            values = table[input_ids.clamp(0, table.numel() - 1)]
            return torch.where(inside, values, torch.full_like(values, self.unseen_idf))
        if not self.training:
            raise RuntimeError(
                "IDFPruning has no IDF table: call compressor.fit_idf(tokenised corpus) or "
                "compressor.set_idf(table) before encoding documents for the index"
            )
        vocab = int(input_ids.max()) + 1
        present = torch.zeros(input_ids.shape[0], vocab, device=input_ids.device)
        present.scatter_add_(1, input_ids.masked_fill(~mask, 0), mask.float())
        df = (present > 0).float().sum(0)
        return torch.log((input_ids.shape[0] + 1) / (df[input_ids] + 1)) + 1

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        mask = states.mask.bool()
        return top_scoring(self.token_idf(states.input_ids, mask), mask, self.counts(mask))


class AttentionPruning(TokenPruning):
    """Keep the k tokens receiving the most last-layer attention.

    The score of token j is the attention it receives, averaged over heads and over
    the real tokens i attending to it: ``mean_h mean_i A[h, i, j]``. Ties go to the
    earlier token. The backbone must return attentions (eager attention).
    """

    needs_attention = True

    def keep_mask(self, vectors: Tensor, states: TokenStates) -> Tensor:
        if states.attentions is None:
            raise ValueError(
                "AttentionPruning needs the encoder's last-layer attentions "
                "(states.attentions is None; the model must honour needs_attention=True)"
            )
        mask = states.mask.bool()
        n = mask.shape[1]
        att = states.attentions[:, :, :n, :n].float().mean(1)  # [B, N, N]
        rows = mask.float()
        received = (att * rows[:, :, None]).sum(1) / rows.sum(1, keepdim=True).clamp(min=1)
        return top_scoring(received, mask, self.counts(mask))
