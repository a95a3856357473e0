"""The Compressor contract: token states in, at most ``budget`` vectors out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from colcompress.models.states import TokenStates

SPACES = ("projected", "hidden")
BUDGET_MODES = ("fixed", "proportional")


@dataclass
class Compressed:
    """A compressed multi-vector representation.

    Attributes
    ----------
    vectors : Tensor[B, M, D]
        Output vectors, M <= budget. Rows beyond a document's count are padding.
    mask : Tensor[B, M]
        Bool, True for real vectors. Padding rows are masked so they can never
        win a MaxSim.
    """

    vectors: Tensor
    mask: Tensor

    def unpadded(self) -> list[Tensor]:
        """Split into per-sequence tensors ``[m_i, D]`` without padding rows."""
        return [v[m] for v, m in zip(self.vectors, self.mask.bool(), strict=True)]


class Compressor(nn.Module):
    """Maps token states ``[B, N, H]`` to at most ``budget`` vectors per sequence.

    A compressor acts on the *projected* token vectors ``[B, N, D]`` (already
    L2-normalised where the model normalises) through :meth:`compress`. Methods
    that need the encoder's cooperation declare it with the class attributes:

    Attributes
    ----------
    applies_to_queries : bool
        Whether queries are compressed too (CRISP clusters both sides).
    budget_fixed_at_train : bool
        True when the test-time budget must equal the training budget
        (seqresize, memtok: their parameters are shaped by it).
    num_extra_tokens : int
        Learnable tokens the encoder appends to every document (memtok, agc).
    needs_attention : bool
        Whether the encoder must return last-layer attentions.
    attention_rows : {"all", "appended"}
        Which query rows of them: every token's (``[B, heads, N + T, N + T]``; the
        last layer then runs eager attention) or the appended tokens' only
        (``[B, heads, T, N + T]``, computed next to the layer's fused kernel; agc).
    needs_hidden_size : bool
        Whether the constructor takes ``hidden_size``, the backbone's H (the
        embeddings of appended tokens: memtok, agc).
    needs_corpus_idf : bool
        Whether :meth:`fit_idf` must see the indexed corpus before use (IDF pruning).
    counts_pruning : bool
        Whether it counts the vectors it prunes (:meth:`reset_counts`,
        :attr:`prune_ratio`; lossless pruning).
    space : {"projected", "hidden"}
        What :meth:`forward` compresses: the projected, normalised vectors
        ``[B, N, D]``, or the backbone's last-layer hidden states ``Z^(L)``
        ``[B, N, H]`` (the papers' formulation), whose compressed vectors the model
        then projects and normalises. Compressors that offer the choice (hpool, agc)
        take it as a constructor argument.
    budget_mode : {"fixed", "proportional"}
        ``fixed``: at most ``budget`` vectors per document. ``proportional``
        (:meth:`set_budget_mode`; hpool, agc): document ``i`` with ``n_i`` real
        tokens gets ``max(minimum, round(budget * n_i / mean_tokens))`` vectors
        (:meth:`doc_budgets`), so an index of documents like the corpus holds
        ``budget`` vectors per document on average, spent where the tokens are.
    mean_tokens : float or None
        The corpus's mean number of real tokens per document for ``proportional``:
        a setting, or fitted on the indexed corpus (:meth:`fit_lengths`) like IDF;
        None (not fitted yet) uses each batch's own mean.

    Parameters
    ----------
    budget : int or None
        Maximum number of output vectors per sequence (None: method-defined).
    posthoc : bool
        Apply only at index/query time; training then sees uncompressed vectors
        (post-hoc H-Pool, post-hoc k-means, static pruning, lossless pruning).
    """

    applies_to_queries: bool = False
    budget_fixed_at_train: bool = False
    num_extra_tokens: int = 0
    needs_attention: bool = False
    attention_rows: str = "all"
    needs_hidden_size: bool = False
    needs_corpus_idf: bool = False
    counts_pruning: bool = False
    space: str = "projected"
    budget_mode: str = "fixed"
    mean_tokens: float | None = None
    fit_mean_tokens: bool = False

    def __init__(self, budget: int | None = None, posthoc: bool = False) -> None:
        super().__init__()
        if budget is not None and budget < 1:
            raise ValueError(f"compressor budget must be a positive integer, got {budget}")
        self.budget = budget
        self.train_budget = budget
        self.posthoc = posthoc

    def set_space(self, space: str) -> None:
        """Choose what :meth:`forward` compresses (see :attr:`space`)."""
        if space not in SPACES:
            raise ValueError(f"compressor.space must be one of {SPACES}, got {space!r}")
        self.space = space

    def set_budget_mode(self, mode: str, mean_tokens: float | None = None) -> None:
        """Choose fixed or proportional per-document budgets (see :attr:`budget_mode`).

        Parameters
        ----------
        mode : {"fixed", "proportional"}
        mean_tokens : float or None
            Proportional mode: the corpus's mean real tokens per document; None
            fits it on the indexed corpus (:attr:`needs_corpus_lengths`).
        """
        if mode not in BUDGET_MODES:
            raise ValueError(f"compressor.budget_mode must be one of {BUDGET_MODES}, got {mode!r}")
        if mode == "proportional" and self.budget is None:
            raise ValueError("compressor.budget_mode=proportional needs an integer budget")
        if mean_tokens is not None and not mean_tokens > 0:
            raise ValueError(f"compressor.mean_tokens must be > 0 or null, got {mean_tokens}")
        self.budget_mode = mode
        self.mean_tokens = mean_tokens
        self.fit_mean_tokens = mode == "proportional" and mean_tokens is None

    @property
    def needs_corpus_lengths(self) -> bool:
        """Whether :meth:`fit_lengths` must see the indexed corpus (proportional
        budgets without a configured ``mean_tokens``)."""
        return self.fit_mean_tokens

    def fit_lengths(self, lengths: list[int]) -> None:
        """Set ``mean_tokens`` to the mean real-token count of the corpus's documents."""
        if not lengths:
            raise ValueError("fit_lengths needs at least one document")
        self.mean_tokens = sum(lengths) / len(lengths)

    def doc_budgets(self, lengths: Tensor, minimum: int = 1) -> Tensor:
        """Vectors allowed per document (before capping at its own token count).

        Parameters
        ----------
        lengths : Tensor[B]
            Long, real tokens per document.
        minimum : int
            Smallest proportional budget (1; hpool: its protected tokens + 1).

        Returns
        -------
        Tensor[B]
            Long; ``budget`` everywhere in fixed mode, else
            ``max(minimum, round(budget * n_i / mean_tokens))``.
        """
        if self.budget_mode == "fixed":
            return torch.full_like(lengths, self.budget)
        mean = self.mean_tokens
        if mean is None:
            mean = float(lengths.double().mean()) if lengths.numel() else 1.0
        share = torch.round(self.budget * lengths.double() / mean).long()
        return share.clamp_min(minimum)

    def check_budget(self, budget: int | None) -> None:
        """Raise unless this compressor can index with ``budget``.

        Raises
        ------
        ValueError
            If this compressor's parameters fix the budget and ``budget`` differs,
            or ``budget`` is not a positive integer.
        """
        if self.budget_fixed_at_train and budget != self.train_budget:
            raise ValueError(
                f"{type(self).__name__} was trained with budget={self.train_budget} and "
                f"cannot index with budget={budget}: its parameters are shaped by the "
                "training budget (set test_budget to null or to the training budget)"
            )
        if budget is not None and budget < 1:
            raise ValueError(f"compressor budget must be a positive integer, got {budget}")

    def set_budget(self, budget: int | None) -> None:
        """Change the budget used at index time (checked by :meth:`check_budget`)."""
        self.check_budget(budget)
        self.budget = budget

    def fit_idf(self, doc_token_id_lists: Any, vocab_size: int | None = None) -> None:
        """Fit corpus statistics from tokenised documents (``needs_corpus_idf`` only)."""
        raise NotImplementedError(f"{type(self).__name__} uses no corpus statistics")

    def reset_counts(self) -> None:
        """Zero the pruning counters (``counts_pruning`` only)."""
        raise NotImplementedError(f"{type(self).__name__} counts no pruned vectors")

    def init_from_backbone(self, backbone: nn.Module, cls_token_id: int, span: int) -> None:
        """Initialise parameters from the backbone's weights (when configured to).

        Called by the model once its backbone is built and again when an
        uncompressed checkpoint's encoder is loaded under a fresh compressor
        (:func:`~colcompress.checkpoint.load_model_weights`). Compressors without
        such an initialisation leave their parameters as they are.

        Parameters
        ----------
        backbone : nn.Module
            The HF encoder.
        cls_token_id : int
            The tokenizer's [CLS] id.
        span : int
            Document length in tokens (``model.doc_length``).
        """

    def extra_token_embeddings(self) -> Tensor | None:
        """Input embeddings ``[T, H]`` of the learnable tokens to append, or None."""
        return None

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Compress projected token vectors.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
            Projected (and normalised) token vectors aligned with ``states.hidden``.
        states : TokenStates
            Masks, ids, appended-token states and attentions from the encoder.
        extra_vectors : Tensor[B, T, D] or None
            Projected (and normalised) states of the appended learnable tokens.

        Returns
        -------
        Compressed
        """
        raise NotImplementedError

    def regularization(self, docs: Compressed) -> dict[str, Tensor]:
        """Weighted loss terms this compressor adds during training.

        Parameters
        ----------
        docs : Compressed
            The document representations the training loss scores (uncompressed
            when the compressor is post-hoc).

        Returns
        -------
        dict of str to Tensor
            Name -> scalar, already multiplied by its configured weight; the
            training module adds them to the loss and logs each.
        """
        return {}


class NoCompression(Compressor):
    """Plain ColBERT: every contextual token vector is kept."""

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        return Compressed(vectors=vectors, mask=states.mask.bool())
