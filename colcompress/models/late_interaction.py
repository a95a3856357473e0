"""What every late-interaction model shares: projection, normalisation, compression, MaxSim."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colcompress.compressors.base import Compressed, Compressor, NoCompression
from colcompress.models.formats import model_sizes
from colcompress.models.scoring import maxsim, maxsim_pairwise
from colcompress.models.states import TokenStates

NORMALIZATIONS = ("l2", "clip")
SCORINGS = ("maxsim", "maxsim_relu")


class LateInteraction(nn.Module):
    """A late-interaction retriever: token states -> projected vectors -> compressor -> MaxSim.

    Subclasses own the encoders and the inputs: they turn a corpus
    :class:`~colcompress.data.beir.Doc` into a model input (``document_input``),
    batch inputs (``tokenize_queries``, ``tokenize_documents``) and encode a batch
    into :class:`~colcompress.models.states.TokenStates` (:meth:`_query_states`,
    :meth:`_document_states`); they set :attr:`encoder` (whose ``.model`` is the
    backbone), :attr:`projection`, :attr:`dim`, :attr:`query_length` and
    :attr:`doc_length`. Evaluation, indexing and training call only the methods
    named here.

    Parameters
    ----------
    compressor : Compressor or None
        None means every token vector is kept.
    normalize : {"l2", "clip"}
        ``l2``: unit-norm vectors (ColBERT). ``clip``: rescale to norm <= 1
        (ColBERT_P, for lossless pruning).
    scoring : {"maxsim", "maxsim_relu"}
        ``maxsim_relu`` clamps dot products at 0 (ColBERT_P).
    """

    #: What documents are: ``"text"``, ``"image"``, ...
    document_modality = "text"
    encoder: nn.Module
    projection: nn.Linear
    dim: int
    query_length: int
    doc_length: int

    def __init__(
        self, compressor: Compressor | None = None, normalize: str = "l2", scoring: str = "maxsim"
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"model.normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"model.scoring must be one of {SCORINGS}, got {scoring!r}")
        self.compressor = compressor if compressor is not None else NoCompression()
        self.normalize = normalize
        self.relu = scoring == "maxsim_relu"

    @classmethod
    def config_sizes(cls, model_cfg: Any) -> tuple[int, int]:
        """The hidden size of the states compressed (the document encoder's) and the
        vector dimension a ``colcompress/conf/model`` config gives, read from the
        configs without building the model (a compressor's appended tokens need it).

        Returns
        -------
        (hidden, dim) : tuple of int
        """
        return model_sizes(model_cfg)

    def init_compressor_from_backbone(self) -> None:
        """Let the compressor initialise parameters from the backbone (nothing by default)."""

    def tokenize_documents(self, inputs: list[Any], length: int | None = None) -> Any:
        """Batch document inputs (as :meth:`document_input` gives them)."""
        raise NotImplementedError

    def _query_states(self, batch: Any, output_attentions: bool) -> TokenStates:
        """Encode a query batch into token states."""
        raise NotImplementedError

    def _document_states(
        self, batch: Any, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        """Encode a document batch (with ``extra`` appended tokens) into token states."""
        raise NotImplementedError

    @property
    def encoders(self) -> tuple[nn.Module, ...]:
        """The encoders that train as the backbone (each has ``.model``, the HF model)."""
        return (self.encoder,)

    @property
    def projections(self) -> tuple[nn.Linear, ...]:
        """The projections to the shared vector space."""
        return (self.projection,)

    @property
    def document_projection(self) -> nn.Linear:
        """The projection of document token states (the query one for text)."""
        return self.projection

    @torch.no_grad()
    def fit_projection(self, texts: list[Any], batch_size: int = 32) -> float:
        """Initialise the document projection from the encoder's own token geometry.

        The rows of the projection become the top-``dim`` right singular vectors
        of the (uncentred) matrix of document token states, so dot products of
        projected vectors approximate the backbone's own dot products as well as a
        rank-``dim`` map can; training then starts from what the backbone knows
        instead of from a random projection (which wrecks the zero-shot model).

        With ``normalize="clip"`` (ColBERT_P) the rows are then scaled so the longest
        projected sample vector has norm 1: every vector starts inside the unit ball,
        where its norm is free to shrink. Unscaled, most projected MiniLM vectors
        have norms of 2-6 and are clipped to exactly 1, where the clip has no radial
        gradient; the L1 and document-similarity regularizers then cannot shorten
        them, and no vector becomes short or dominated (measured: after 170 steps
        81% of NFCorpus token vectors still had a raw norm above 1).

        A model with a projection of its own for documents (:attr:`document_projection`)
        fits that one (the query projection keeps its weights).

        Parameters
        ----------
        texts : list
            Sample documents, as :meth:`document_input` gives them.
        batch_size : int

        Returns
        -------
        float
            Fraction of the token matrix's energy (squared singular values) kept.
        """
        was_training = self.training
        self.eval()
        projection = self.document_projection
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize_documents(texts[start : start + batch_size])
            batch = batch.to(projection.weight.device)
            states = self._document_states(batch, None, False)
            rows.append(states.hidden[batch.mask].float())
        tokens = torch.cat(rows)
        if tokens.shape[0] < self.dim:
            raise ValueError(
                f"fit_projection needs at least dim={self.dim} token vectors, got "
                f"{tokens.shape[0]} from {len(texts)} texts"
            )
        _, singular, vh = torch.linalg.svd(tokens, full_matrices=False)
        weight = vh[: self.dim]
        if self.normalize == "clip":
            weight = weight / (tokens @ weight.T).norm(dim=-1).max()
        projection.weight.copy_(weight.to(projection.weight.dtype))
        self.train(was_training)
        energy = singular.square()
        return float(energy[: self.dim].sum() / energy.sum())

    # ------------------------------------------------------------------- encode
    def _project(self, hidden: Tensor, projection: nn.Linear) -> Tensor:
        """Project (in the projection's dtype, e.g. float32 states of a bfloat16
        backbone) and normalise."""
        return self._normalize(projection(hidden.to(projection.weight.dtype)))

    def _normalize(self, vectors: Tensor) -> Tensor:
        if self.normalize == "l2":
            return F.normalize(vectors, dim=-1)
        norms = vectors.norm(dim=-1, keepdim=True)
        return vectors / norms.clamp_min(1.0)

    def _encode(self, batch: Any, is_query: bool, compress: bool) -> Compressed:
        compressor = self.compressor
        use = compress and (not is_query or compressor.applies_to_queries)
        use = use and not (self.training and compressor.posthoc)
        attend = use and compressor.needs_attention
        if is_query:
            projection = self.projection
            states = self._query_states(batch, attend)
        else:
            projection = self.document_projection
            extra = compressor.extra_token_embeddings() if use else None
            states = self._document_states(batch, extra, attend)
        states.mask = batch.mask
        states.is_query = is_query
        if use and compressor.space == "hidden":  # compress Z^(L), then project
            out = compressor(states.hidden, states, states.extra_hidden)
            return Compressed(self._project(out.vectors, projection), out.mask)
        vectors = self._project(states.hidden, projection)
        if not use:
            return Compressed(vectors, batch.mask)
        extra_vectors = (
            self._project(states.extra_hidden, projection)
            if states.extra_hidden is not None
            else None
        )
        out = compressor(vectors, states, extra_vectors)
        return Compressed(self._normalize(out.vectors), out.mask)

    def encode_queries(self, batch: Any, compress: bool = True) -> Compressed:
        """Encode queries: ``vectors[B, Lq, D]`` (compressed only when the compressor
        applies to queries)."""
        return self._encode(batch, is_query=True, compress=compress)

    def encode_documents(self, batch: Any, compress: bool = True) -> Compressed:
        """Encode documents: ``vectors[B, M, D]``, compressed unless ``compress=False``
        (or training with a post-hoc compressor)."""
        return self._encode(batch, is_query=False, compress=compress)

    # -------------------------------------------------------------------- score
    def score(self, queries: Compressed, docs: Compressed) -> Tensor:
        """All-pairs late-interaction scores ``[Bq, Bd]``."""
        return maxsim(queries.vectors, queries.mask, docs.vectors, docs.mask, relu=self.relu)

    def score_pairs(self, queries: Compressed, docs: Compressed) -> Tensor:
        """Aligned scores ``[B]``: query b against document b."""
        return maxsim_pairwise(queries.vectors, queries.mask, docs.vectors, docs.mask, self.relu)
