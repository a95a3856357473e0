"""Initialisations of the tokens a compressor appends (memory tokens, universal queries)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

TOKEN_INITS = ("normal", "backbone")


def check_token_init(init: str) -> None:
    """Raise unless ``init`` is one of :data:`TOKEN_INITS`."""
    if init not in TOKEN_INITS:
        raise ValueError(f"compressor.init must be one of {TOKEN_INITS}, got {init!r}")


@torch.no_grad()
def backbone_tokens(backbone: nn.Module, token_id: int, count: int, span: int) -> Tensor:
    """Input embeddings of ``count`` tokens made from the backbone's own embeddings.

    Token ``j`` is the word embedding of ``token_id`` (e.g. [CLS]) plus the absolute
    position embedding of position ``floor((j + 1/2) span / count)``, the centre of
    the ``j``-th of ``count`` equal windows over the document's ``span`` positions:
    each token starts as a [CLS] that leans towards one region of the document (the
    encoder adds the position embedding of the token's own slot on top). A backbone
    without absolute position embeddings (rotary ones) gives ``count`` copies of the
    word embedding, told apart by their positions in the encoder only.

    Parameters
    ----------
    backbone : nn.Module
        A HF encoder (``get_input_embeddings()``; BERT-style ``embeddings.position_embeddings``).
    token_id : int
    count : int
    span : int
        Document positions to spread over (at most the backbone's position table).

    Returns
    -------
    Tensor[count, H]
    """
    words = backbone.get_input_embeddings().weight
    tokens = words[token_id].expand(count, -1).clone()
    table = getattr(getattr(backbone, "embeddings", None), "position_embeddings", None)
    if isinstance(table, nn.Embedding):
        span = min(span, table.num_embeddings)
        centres = ((torch.arange(count, dtype=torch.float64) + 0.5) * span / count).long()
        tokens += table.weight[centres.to(table.weight.device)]
    return tokens
