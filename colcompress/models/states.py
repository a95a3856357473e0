"""The data an encoder hands to a compressor."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class TokenStates:
    """Contextual token states of a batch of sequences.

    Attributes
    ----------
    hidden : Tensor[B, N, H]
        Last-layer hidden states of the real input tokens (padding included,
        masked by ``mask``); appended learnable tokens are *not* part of it.
    mask : Tensor[B, N]
        Bool, True for real tokens.
    input_ids : Tensor[B, N]
        The token ids (for id-based pruning such as IDF).
    extra_hidden : Tensor[B, T, H] or None
        Last-layer states of the T learnable tokens a compressor asked the encoder
        to append (memory tokens, universal queries).
    attentions : Tensor[B, heads, R, N + T] or None
        Last-layer attention probabilities over the real tokens followed by the
        appended ones, when asked for: the rows of every token (``R = N + T``) or,
        for a compressor with ``attention_rows="appended"``, of the ``T`` appended
        tokens only.
    is_query : bool
        Whether the batch holds queries (compressors that apply to both sides, such
        as CRISP, size their output differently).
    """

    hidden: Tensor
    mask: Tensor
    input_ids: Tensor
    extra_hidden: Tensor | None = None
    attentions: Tensor | None = None
    is_query: bool = False
