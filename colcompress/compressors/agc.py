"""AGC: attention-guided clustering with learned universal-query tokens.

Qin et al. 2026, "Multi-Vector Index Compression in Any Modality", section 5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import cluster_means
from colcompress.compressors.hashing import document_keys, uniform
from colcompress.compressors.tokens import backbone_tokens, check_token_init
from colcompress.models.states import TokenStates

SELECTIONS = ("saliency", "random")


def random_scores(input_ids: Tensor, mask: Tensor, seed: int) -> Tensor:
    """Pseudo-random token priorities that depend only on the document and the seed.

    A document gets the same priorities whatever batch it is encoded in and in
    every epoch, so random centroid selection is reproducible at index time.

    Parameters
    ----------
    input_ids : Tensor[B, N]
    mask : Tensor[B, N]
        Bool, True for real tokens.
    seed : int

    Returns
    -------
    Tensor[B, N]
        Float in ``[0, 1)``.
    """
    keys = document_keys(input_ids, mask, seed)
    return uniform(keys, torch.arange(input_ids.shape[1], device=input_ids.device))


class AGC(Compressor):
    """Attention-guided clustering.

    ``T = num_queries`` learned universal-query tokens are appended to every
    document. The saliency of document token ``j`` is the last-layer attention
    from the universal queries to ``j``, averaged over heads and queries
    (``alpha_j``). The ``m`` most salient real tokens become centroids, every real
    token joins its most cosine-similar centroid (a centroid always joins its own
    cluster), and each cluster becomes the ``alpha``-weighted mean of its members,
    so gradients reach the encoder through ``alpha`` and the vectors (the
    selection and assignment are constants). A document with at most ``m`` real
    tokens keeps its tokens. Output vectors are in decreasing order of their
    centroid's selection score.

    Parameters
    ----------
    budget : int
        m, the number of centroids (may be changed at index time, the number of
        universal queries stays).
    posthoc : bool
        Compress only at index time.
    num_queries : int or None
        ``|Psi|``, the number of universal-query tokens; None: the training budget
        (the paper aligns them).
    weighting : bool
        Saliency-weighted means; False: plain means (ablation "w/o Attn Weight").
    selection : {"saliency", "random"}
        Centroids by top saliency, or at random ("w/o Attn Select"; a pseudo-random
        priority per document from ``seed`` and its token ids, see
        :func:`random_scores`).
    clustering : bool
        Aggregate clusters; False keeps only the centroid tokens ("w/o Cluster").
    seed : int
        Seed of the random selection.
    init_std : float
        Standard deviation of the normal initialisation of the universal-query
        embeddings (BERT's ``initializer_range``).
    hidden_size : int
        H, the backbone's hidden (input embedding) size.
    init : {"normal", "backbone"}
        ``normal``: random normal universal-query embeddings (``init_std``).
        ``backbone``: the [CLS] embedding plus position embeddings spread over the
        document (:func:`~colcompress.compressors.tokens.backbone_tokens`), set by
        :meth:`init_from_backbone`.
    space : {"projected", "hidden"}
        Cluster the projected, normalised token vectors, or the backbone's hidden
        states ``Z^(L)`` (the paper; the model then projects and normalises the
        cluster means). See :attr:`Compressor.space`.
    budget_mode : {"fixed", "proportional"}
        ``proportional``: each document's number of centroids is proportional to
        its real tokens, at least 1 (:meth:`Compressor.doc_budgets`).
    mean_tokens : float or None
        The corpus's mean real tokens per document for ``proportional``; None
        fits it on the indexed corpus.
    """

    needs_attention = True
    attention_rows = "appended"
    needs_hidden_size = True

    def __init__(
        self,
        budget: int,
        hidden_size: int,
        posthoc: bool = False,
        num_queries: int | None = None,
        weighting: bool = True,
        selection: str = "saliency",
        clustering: bool = True,
        seed: int = 0,
        init_std: float = 0.02,
        init: str = "normal",
        space: str = "projected",
        budget_mode: str = "fixed",
        mean_tokens: float | None = None,
    ) -> None:
        check_token_init(init)
        if budget is None:
            raise ValueError("agc needs an integer compressor.budget, got null")
        super().__init__(budget=budget, posthoc=posthoc)
        self.set_space(space)
        self.set_budget_mode(budget_mode, mean_tokens)
        if selection not in SELECTIONS:
            raise ValueError(f"compressor.selection must be one of {SELECTIONS}, got {selection!r}")
        num_queries = budget if num_queries is None else num_queries
        if num_queries < 1:
            raise ValueError(f"compressor.num_queries must be >= 1 or null, got {num_queries}")
        self.num_extra_tokens = num_queries
        self.weighting = weighting
        self.selection = selection
        self.clustering = clustering
        self.seed = seed
        self.init = init
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_size) * init_std)

    @torch.no_grad()
    def init_from_backbone(self, backbone: nn.Module, cls_token_id: int, span: int) -> None:
        """With ``init="backbone"``: universal queries from the backbone's embeddings."""
        if self.init == "backbone":
            tokens = backbone_tokens(backbone, cls_token_id, self.num_extra_tokens, span)
            self.queries.copy_(tokens)

    def check_budget(self, budget: int | None) -> None:
        """Any positive integer number of index-time centroids."""
        if budget is None:
            raise ValueError("agc needs an integer budget, got None")
        super().check_budget(budget)

    def extra_token_embeddings(self) -> Tensor:
        """The universal-query input embeddings ``[T, H]``."""
        return self.queries

    def saliency(self, attentions: Tensor, mask: Tensor) -> Tensor:
        """Attention from the universal queries to each real document token.

        Parameters
        ----------
        attentions : Tensor[B, heads, R, N + T]
            Last-layer attention probabilities over the real tokens followed by the
            universal queries, whose rows are the last ``T``: only theirs
            (``R = T``, as the encoder records them for agc) or every token's
            (``R = N + T``).
        mask : Tensor[B, N]
            Bool, True for real tokens.

        Returns
        -------
        Tensor[B, N]
            ``alpha``, averaged over heads and universal queries; 0 on masked tokens.
        """
        n, t = mask.shape[1], self.num_extra_tokens
        if attentions.shape[-1] != n + t or attentions.shape[-2] not in (t, n + t):
            raise ValueError(
                f"agc expected attentions [B, heads, {t} or {n + t}, {n + t}] (N={n} tokens + "
                f"{t} universal queries), got {tuple(attentions.shape)}"
            )
        alpha = attentions[:, :, -t:, :n].mean(dim=(1, 2))
        return alpha * mask

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Cluster every document around its ``budget`` most salient tokens.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
            Projected token vectors.
        states : TokenStates
            ``mask[B, N]``, ``input_ids`` (random selection) and
            ``attentions[B, heads, R, N + T]`` (see :meth:`saliency`).
        extra_vectors : Tensor[B, T, D] or None
            Unused (the universal queries act through attention only).

        Returns
        -------
        Compressed
            ``vectors[B, M, D]`` with ``M = min(max_b budget_b, N)``.
        """
        if states.attentions is None:
            raise ValueError(
                "agc needs the encoder's last-layer attentions (TokenStates.attentions is None): "
                "build the encoder with record_attention and pass output_attentions"
            )
        mask = states.mask.bool()
        alpha = self.saliency(states.attentions, mask)
        if self.selection == "saliency":
            scores = alpha.detach()
        else:
            scores = random_scores(states.input_ids, mask, self.seed).to(alpha.dtype)
        scores = scores.masked_fill(~mask, float("-inf"))
        budgets = self.doc_budgets(mask.sum(1))  # [B]
        k = min(int(budgets.max()) if len(budgets) else 1, vectors.shape[1])
        centroids = scores.topk(k, dim=1).indices  # [B, k]
        slots = torch.arange(k, device=vectors.device).expand_as(centroids)
        # real tokens within the document's budget (a prefix of the k slots)
        valid = mask.gather(1, centroids) & (slots < budgets[:, None])
        if not self.clustering:
            picked = vectors.gather(1, centroids[..., None].expand(-1, -1, vectors.shape[-1]))
            return Compressed(picked, valid)
        with torch.no_grad():
            unit = F.normalize(vectors.detach(), dim=-1)
            centres = unit.gather(1, centroids[..., None].expand(-1, -1, unit.shape[-1]))
            similarity = unit @ centres.transpose(1, 2)  # [B, N, k] cosines
            similarity = similarity.masked_fill(~valid[:, None, :], float("-inf"))
            assignment = similarity.argmax(-1)  # [B, N]
            own = torch.where(valid, slots, assignment.gather(1, centroids))
            assignment = assignment.scatter(1, centroids, own)
            assignment = assignment.masked_fill(~mask, -1)
        weights = alpha.clamp_min(torch.finfo(alpha.dtype).tiny) if self.weighting else None
        pooled, out_mask = cluster_means(vectors, assignment, k, weights)
        return Compressed(pooled, out_mask)
