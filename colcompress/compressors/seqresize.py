"""SeqResize: a 2-layer MLP over the sequence axis maps n0 token vectors to m.

Qin et al. 2026, "Multi-Vector Index Compression in Any Modality", section 4.1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colcompress.compressors.base import Compressed, Compressor
from colcompress.compressors.clustering import rank_in_mask
from colcompress.models.states import TokenStates

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
INITS = ("random", "avgpool")


def adaptive_pool_matrix(n_in: int, n_out: int) -> Tensor:
    """The linear map of ``F.adaptive_avg_pool1d`` from ``n_in`` to ``n_out`` positions.

    Output ``i`` averages inputs ``floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out) - 1``.

    Returns
    -------
    Tensor[n_out, n_in]
    """
    rows = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        rows[i, start:end] = 1.0 / (end - start)
    return rows


class SeqResize(Compressor):
    """Sequence resizing: ``C = W2 sigma(W1 PadTrunc(Z, n0))`` along the sequence.

    The real token vectors of a document (in order, masked tokens removed) are
    padded with zero vectors or truncated to ``input_length = n0`` positions;
    the same bias-free MLP ``n0 -> mlp_dim -> m`` is applied to every channel's
    length-``n0`` sequence. Every document gets exactly ``m`` vectors.

    It acts on the projected vectors ``[B, N, D]`` rather than on the backbone's
    hidden states (the paper resizes ``Z`` in ``R^{n x h}``; with a linear
    projection in between, resizing before or after projecting differs only
    through the nonlinearity and the normalisation), so the MLP sees the same
    vectors that are scored and the model needs no extra hook.

    Parameters
    ----------
    budget : int
        m, the number of output vectors (fixed by training).
    posthoc : bool
        Must be False: the MLP is trained.
    input_length : int
        n0; the paper uses the maximum document length (300 on BEIR).
    mlp_dim : int
        d, the MLP's hidden width.
    activation : {"relu", "gelu"}
        sigma.
    init : {"random", "avgpool"}
        ``random``: PyTorch's default (Kaiming-uniform) weights. ``avgpool``: the MLP
        starts as adaptive average pooling of the padded sequence, ``n0 -> m``
        windows: ``W1 = [P; -P; R]``, ``W2 = [I, -I, 0]`` with ``P[m, n0]`` the pooling
        matrix (:func:`adaptive_pool_matrix`) and ``R`` the default random rows, so
        ``C = sigma(P Z) - sigma(-P Z) = P Z`` exactly for both activations
        (``relu(z) - relu(-z) = z`` and ``gelu(z) - gelu(-z) = z Phi(z) + z Phi(-z)
        = z``); the ``mlp_dim - 2m`` spare hidden units start unused (zero columns of
        ``W2``) and learn from the first step. Needs ``mlp_dim >= 2 m``. The windows
        cover the padded ``n0`` positions, so a document shorter than ``n0`` fills
        only the first windows (the rest start as zero vectors), as a linear map
        of the sequence axis must.
    """

    budget_fixed_at_train = True

    def __init__(
        self,
        budget: int,
        posthoc: bool = False,
        input_length: int = 300,
        mlp_dim: int = 512,
        activation: str = "relu",
        init: str = "random",
    ) -> None:
        if budget is None:
            raise ValueError("seqresize needs an integer compressor.budget, got null")
        if posthoc:
            raise ValueError("seqresize cannot be post-hoc: its MLP is trained (posthoc=false)")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"compressor.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        if input_length < 1 or mlp_dim < 1:
            raise ValueError(
                "compressor.input_length and compressor.mlp_dim must be positive, got "
                f"{input_length} and {mlp_dim}"
            )
        if init not in INITS:
            raise ValueError(f"compressor.init must be one of {INITS}, got {init!r}")
        if init == "avgpool" and mlp_dim < 2 * budget:
            raise ValueError(
                f"compressor.init=avgpool needs compressor.mlp_dim >= 2 * budget "
                f"(= {2 * budget}), got {mlp_dim}"
            )
        super().__init__(budget=budget, posthoc=posthoc)
        self.input_length = input_length
        self.init = init
        self.mlp = nn.Sequential(
            nn.Linear(input_length, mlp_dim, bias=False),
            ACTIVATIONS[activation](),
            nn.Linear(mlp_dim, budget, bias=False),
        )
        if init == "avgpool":
            self._init_avgpool()

    @torch.no_grad()
    def _init_avgpool(self) -> None:
        """``W1 = [P; -P; R]``, ``W2 = [I, -I, 0]``: the MLP is average pooling at init."""
        m = self.budget
        pool = adaptive_pool_matrix(self.input_length, m)
        first, second = self.mlp[0].weight, self.mlp[2].weight
        first[:m] = pool
        first[m : 2 * m] = -pool
        second.zero_()
        second[:, :m] = torch.eye(m)
        second[:, m : 2 * m] = -torch.eye(m)

    def pad_trunc(self, vectors: Tensor, mask: Tensor) -> Tensor:
        """Real token vectors moved to the front, zero-padded or truncated to n0.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
        mask : Tensor[B, N]
            Bool, True for real tokens (any layout).

        Returns
        -------
        Tensor[B, n0, D]
        """
        batch, _, dim = vectors.shape
        rank = rank_in_mask(mask)
        slot = torch.where((rank >= 0) & (rank < self.input_length), rank, self.input_length)
        out = vectors.new_zeros(batch, self.input_length + 1, dim)
        out = out.scatter_add(1, slot[..., None].expand_as(vectors), vectors * mask[..., None])
        return out[:, : self.input_length]

    def forward(
        self, vectors: Tensor, states: TokenStates, extra_vectors: Tensor | None = None
    ) -> Compressed:
        """Resize every document to ``budget`` vectors.

        Parameters
        ----------
        vectors : Tensor[B, N, D]
            Projected token vectors.
        states : TokenStates
            Only ``mask[B, N]`` is used.
        extra_vectors : None
            Unused.

        Returns
        -------
        Compressed
            ``vectors[B, m, D]``, all unmasked.
        """
        fixed = self.pad_trunc(vectors, states.mask.bool())  # [B, n0, D]
        resized = self.mlp(fixed.transpose(1, 2)).transpose(1, 2)  # [B, m, D]
        mask = torch.ones(resized.shape[:2], dtype=torch.bool, device=resized.device)
        return Compressed(resized, mask)
