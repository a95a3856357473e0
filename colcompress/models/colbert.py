"""ColBERT-style late-interaction model: encoder + projection + compressor."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colcompress.compressors.base import Compressed, Compressor, NoCompression
from colcompress.models.backbone import load_backbone
from colcompress.models.encoder import Encoder
from colcompress.models.scoring import maxsim, maxsim_pairwise

NORMALIZATIONS = ("l2", "clip")
SCORINGS = ("maxsim", "maxsim_relu")


@dataclass
class Tokenized:
    """A tokenised batch.

    Attributes
    ----------
    input_ids : Tensor[B, N]
    attention_mask : Tensor[B, N]
        What the backbone may attend to.
    mask : Tensor[B, N]
        Bool, which output vectors take part in scoring (query augmentation tokens
        are scored but not attended to; punctuation may be skipped in documents).
    """

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> Tokenized:
        return Tokenized(
            self.input_ids.to(device), self.attention_mask.to(device), self.mask.to(device)
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class ColBERT(nn.Module):
    """A late-interaction retriever with a pluggable document compressor.

    Parameters
    ----------
    backbone : str
        ``"minilm"`` (embedded all-MiniLM-L6-v2), a HF id or a local path.
    compressor : Compressor or None
        None means plain ColBERT (every token vector is kept).
    dim : int or None
        Projection dimension; None keeps the backbone's hidden size (identity-
        initialised projection).
    query_length, doc_length : int
        Token budgets of the tokenizer (queries are padded/truncated to
        ``query_length`` when augmentation is on).
    query_augmentation : bool
        ColBERT query augmentation: pad queries with [MASK] tokens to
        ``query_length``; they are scored but not attended to.
    query_marker, doc_marker : str or None
        Tokens inserted after [CLS] to mark queries and documents (ColBERT uses
        ``[unused0]``/``[unused1]``); None inserts nothing.
    skip_punctuation : bool
        Drop document vectors of punctuation tokens (ColBERT's skiplist).
    normalize : {"l2", "clip"}
        ``l2``: unit-norm vectors (ColBERT). ``clip``: rescale to norm <= 1
        (ColBERT_P, for lossless pruning).
    scoring : {"maxsim", "maxsim_relu"}
        ``maxsim_relu`` clamps dot products at 0 (ColBERT_P).
    dropout : float or None
        Dropout probability of the backbone in training (every dropout module);
        None keeps the backbone's own. Attention-probability dropout is a large
        share of a CPU training step (it draws ``B * heads * N * N`` random
        numbers per layer).
    random_config : dict or None
        Build an untrained backbone from its config with these overrides (tests).
    """

    def __init__(
        self,
        backbone: str = "minilm",
        compressor: Compressor | None = None,
        dim: int | None = 128,
        query_length: int = 32,
        doc_length: int = 300,
        query_augmentation: bool = False,
        query_marker: str | None = None,
        doc_marker: str | None = None,
        skip_punctuation: bool = True,
        normalize: str = "l2",
        scoring: str = "maxsim",
        dropout: float | None = None,
        random_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"model.normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if scoring not in SCORINGS:
            raise ValueError(f"model.scoring must be one of {SCORINGS}, got {scoring!r}")
        self.compressor = compressor if compressor is not None else NoCompression()
        model, self.tokenizer = load_backbone(backbone, random_config, dropout)
        self.encoder = Encoder(model, record_attention=self.compressor.needs_attention)
        hidden = self.encoder.hidden_size
        self.dim = dim or hidden
        self.projection = nn.Linear(hidden, self.dim, bias=False)
        if dim is None:
            nn.init.eye_(self.projection.weight)
        self.query_length = query_length
        self.doc_length = doc_length
        self.query_augmentation = query_augmentation
        self.query_marker_id = self._token_id(query_marker, "model.query_marker")
        self.doc_marker_id = self._token_id(doc_marker, "model.doc_marker")
        self.normalize = normalize
        self.relu = scoring == "maxsim_relu"
        self.skip_ids = (
            torch.tensor(sorted(self._punctuation_ids()), dtype=torch.long)
            if skip_punctuation
            else torch.empty(0, dtype=torch.long)
        )

    def _token_id(self, token: str | None, option: str) -> int | None:
        if token is None:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"{option}={token!r} is not a single token of the backbone's vocabulary"
            )
        return int(token_id)

    def _punctuation_ids(self) -> set[int]:
        ids = set()
        for symbol in string.punctuation:
            token_ids = self.tokenizer.encode(symbol, add_special_tokens=False)
            if len(token_ids) == 1:
                ids.add(token_ids[0])
        return ids

    # ----------------------------------------------------------------- tokenize
    def _tokenize(
        self, texts: list[str], length: int, marker: int | None, pad_to_length: bool = False
    ) -> Tokenized:
        room = length - (marker is not None)
        enc = self.tokenizer(
            list(texts),
            max_length=room,
            truncation=True,
            padding="max_length" if pad_to_length else "longest",
            return_tensors="pt",
        )
        ids, attention = enc["input_ids"], enc["attention_mask"]
        if marker is not None:
            column = torch.full((ids.shape[0], 1), marker, dtype=ids.dtype)
            ids = torch.cat([ids[:, :1], column, ids[:, 1:]], dim=1)
            attention = torch.cat([attention[:, :1], torch.ones_like(column), attention[:, 1:]], 1)
        return Tokenized(ids, attention, attention.bool())

    def tokenize_queries(self, texts: list[str]) -> Tokenized:
        """Tokenise queries (with [MASK] augmentation when configured)."""
        tok = self._tokenize(
            texts, self.query_length, self.query_marker_id, self.query_augmentation
        )
        if not self.query_augmentation:
            return tok
        pad = tok.input_ids == self.tokenizer.pad_token_id
        ids = tok.input_ids.masked_fill(pad, self.tokenizer.mask_token_id)
        return Tokenized(ids, tok.attention_mask, torch.ones_like(tok.mask))

    def tokenize_documents(self, texts: list[str], length: int | None = None) -> Tokenized:
        """Tokenise documents (to ``length`` tokens, default ``doc_length``), masking
        punctuation vectors when configured."""
        tok = self._tokenize(texts, length or self.doc_length, self.doc_marker_id)
        if self.skip_ids.numel():
            tok.mask &= ~torch.isin(tok.input_ids, self.skip_ids)
        return tok

    @torch.no_grad()
    def fit_projection(self, texts: list[str], batch_size: int = 32) -> float:
        """Initialise the projection from the backbone's own token geometry.

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

        Parameters
        ----------
        texts : list of str
            Sample documents.
        batch_size : int

        Returns
        -------
        float
            Fraction of the token matrix's energy (squared singular values) kept.
        """
        was_training = self.training
        self.eval()
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenize_documents(texts[start : start + batch_size])
            batch = batch.to(self.projection.weight.device)
            states = self.encoder(batch.input_ids, batch.attention_mask)
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
        self.projection.weight.copy_(weight.to(self.projection.weight.dtype))
        self.train(was_training)
        energy = singular.square()
        return float(energy[: self.dim].sum() / energy.sum())

    # ------------------------------------------------------------------- encode
    def _project(self, hidden: Tensor) -> Tensor:
        vectors = self.projection(hidden)
        return self._normalize(vectors)

    def _normalize(self, vectors: Tensor) -> Tensor:
        if self.normalize == "l2":
            return F.normalize(vectors, dim=-1)
        norms = vectors.norm(dim=-1, keepdim=True)
        return vectors / norms.clamp_min(1.0)

    def _encode(self, batch: Tokenized, is_query: bool, compress: bool) -> Compressed:
        compressor = self.compressor
        use = compress and (not is_query or compressor.applies_to_queries)
        use = use and not (self.training and compressor.posthoc)
        extra = compressor.extra_token_embeddings() if use and not is_query else None
        states = self.encoder(
            batch.input_ids,
            batch.attention_mask,
            extra_embeddings=extra,
            output_attentions=use and compressor.needs_attention,
        )
        states.mask = batch.mask
        states.is_query = is_query
        vectors = self._project(states.hidden)
        if not use:
            return Compressed(vectors, batch.mask)
        extra_vectors = (
            self._project(states.extra_hidden) if states.extra_hidden is not None else None
        )
        out = compressor(vectors, states, extra_vectors)
        return Compressed(self._normalize(out.vectors), out.mask)

    def encode_queries(self, batch: Tokenized, compress: bool = True) -> Compressed:
        """Encode queries: ``vectors[B, Lq, D]`` (compressed only when the compressor
        applies to queries)."""
        return self._encode(batch, is_query=True, compress=compress)

    def encode_documents(self, batch: Tokenized, compress: bool = True) -> Compressed:
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
