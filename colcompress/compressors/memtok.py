"""MemTok: learnable memory tokens whose last-layer states are the document.

Qin et al. 2026, "Multi-Vector Index Compression in Any Modality", section 4.2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.tokens import backbone_tokens, check_token_init
from colcompress.models.states import TokenStates


class MemTok(Compressor):
    """Memory tokens: ``m`` learned input embeddings appended to every document.

    After the bidirectional encoder, the document is represented by the
    (projected) last-layer states of the ``m`` memory tokens only; every document
    gets exactly ``m`` vectors, short ones included. The budget is fixed by
    training.

    Parameters
    ----------
    budget : int
        m, the number of memory tokens.
    hidden_size : int
        H, the backbone's hidden (input embedding) size.
    posthoc : bool
        Must be False: untrained memory tokens carry no information.
    init_std : float
        Standard deviation of the normal initialisation of the memory-token
        embeddings (BERT's ``initializer_range``; the embedding LayerNorm of the
        backbone rescales them anyway).
    init : {"normal", "backbone"}
        ``normal``: random normal embeddings (``init_std``). ``backbone``: the
        [CLS] embedding plus position embeddings spread over the document
        (:func:`~colcompress.compressors.tokens.backbone_tokens`), set by
        :meth:`init_from_backbone`.
    """

    budget_fixed_at_train = True
    needs_hidden_size = True

    def __init__(
        self,
        budget: int,
        hidden_size: int,
        posthoc: bool = False,
        init_std: float = 0.02,
        init: str = "normal",
    ) -> None:
        check_token_init(init)
        if budget is None:
            raise ValueError("memtok needs an integer compressor.budget (memory tokens), got null")
        if posthoc:
            raise ValueError(
                "memtok cannot be post-hoc: its memory tokens are trained (posthoc=false)"
            )
        super().__init__(budget=budget, posthoc=posthoc)
        self.num_extra_tokens = budget
        self.init = init
        self.memory = nn.Parameter(torch.randn(budget, hidden_size) * init_std)

    @torch.no_grad()
    def init_from_backbone(self, backbone: nn.Module, cls_token_id: int, span: int) -> None:
        """With ``init="backbone"``: memory tokens from the backbone's embeddings."""
        if self.init == "backbone":
            tokens = backbone_tokens(backbone, cls_token_id, self.num_extra_tokens, span)
            self.memory.copy_(tokens)

    def extra_token_embeddings(self) -> Tensor:
        """The memory-token input embeddings ``[m, H]``."""
        return self.memory

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Return the memory-token vectors.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
            Projected document token vectors; discarded.
        states : TokenStates
            Unused.
        extra_vectors : Tensor[B, m, D]
            Projected last-layer states of the memory tokens.

        Returns
        -------
        Compressed
            ``vectors[B, m, D]``, all unmasked.
        """
        if extra_vectors is None or extra_vectors.shape[1] != self.num_extra_tokens:
            got = None if extra_vectors is None else tuple(extra_vectors.shape)
            raise ValueError(
                f"memtok expected the states of its {self.num_extra_tokens} appended memory "
                f"tokens as extra_vectors [B, {self.num_extra_tokens}, D], got {got}"
            )
        mask = torch.ones(extra_vectors.shape[:2], dtype=torch.bool, device=extra_vectors.device)
        return Compressed(extra_vectors, mask)
