"""ColBERT-style late-interaction model: encoder + projection + compressor."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from colcompress.compressors.base import Compressor
from colcompress.data.beir import Doc
from colcompress.models.backbone import load_backbone
from colcompress.models.encoder import Encoder
from colcompress.models.formats import Pretrained, check_format, read_pretrained
from colcompress.models.late_interaction import LateInteraction
from colcompress.models.states import TokenStates


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


class ColBERT(LateInteraction):
    """A late-interaction retriever with a pluggable document compressor.

    Queries and documents are texts through one encoder and one projection.
    Subclasses encode documents of another modality (:attr:`document_modality`)
    through their own encoder and projection, keeping this API: the evaluation,
    indexing and training code turn a corpus :class:`~colcompress.data.beir.Doc`
    into a model input with :meth:`document_input`, batch inputs with
    :meth:`tokenize_documents` and encode them with :meth:`encode_documents`.

    Parameters
    ----------
    backbone : str
        ``"minilm"`` (embedded all-MiniLM-L6-v2), a HF id or a local path: a
        transformers encoder (``format="hf"``) or a checkpoint in ``format``.
    compressor : Compressor or None
        None means plain ColBERT (every token vector is kept).
    format : {"hf", "stanford", "pylate"}
        ``hf``: a transformers encoder with a new projection and the settings below.
        ``stanford`` / ``pylate``: a ColBERT checkpoint loaded as it is (see
        :mod:`colcompress.models.formats`): its projection, markers, lengths, query
        augmentation and skiplist; a setting below left None takes the checkpoint's,
        a given one overrides it.
    dim : int or None
        Projection dimension; None keeps the backbone's hidden size (identity-
        initialised projection), or the checkpoint's projection.
    query_length, doc_length : int or None
        Token budgets of the tokenizer, markers included (queries are padded to
        ``query_length`` when augmentation is on). None: 32 and 300 with ``hf``.
    query_augmentation : bool or None
        ColBERT query augmentation: pad queries with [MASK] tokens to
        ``query_length``; they are all scored. None: off with ``hf``.
    attend_to_augmentation : bool or None
        Whether the encoder attends to the [MASK] tokens (colbert-ai's
        ``attend_to_mask_tokens``, PyLate's ``attend_to_expansion_tokens``).
    query_marker, doc_marker : str or None
        Tokens inserted after [CLS] to mark queries and documents (ColBERT uses
        ``[unused0]``/``[unused1]``); ``""`` inserts nothing (so does None with ``hf``).
    skip_punctuation : bool or None
        Drop document vectors of punctuation tokens (ColBERT's skiplist; a
        checkpoint's own skiplist). None: on with ``hf``.
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
        Build an untrained backbone from its config with these overrides (tests;
        ``hf`` only).
    """

    def __init__(
        self,
        backbone: str = "minilm",
        compressor: Compressor | None = None,
        format: str = "hf",
        dim: int | None = 128,
        query_length: int | None = None,
        doc_length: int | None = None,
        query_augmentation: bool | None = None,
        attend_to_augmentation: bool | None = None,
        query_marker: str | None = None,
        doc_marker: str | None = None,
        skip_punctuation: bool | None = None,
        normalize: str = "l2",
        scoring: str = "maxsim",
        dropout: float | None = None,
        random_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(compressor, normalize, scoring)
        check_format(format)
        self.format = format
        pretrained = None
        if format == "hf":
            model, self.tokenizer = load_backbone(backbone, random_config, dropout)
        else:
            if random_config is not None:
                raise ValueError(f"model.random_config applies to model.format=hf, not {format}")
            pretrained = read_pretrained(format, backbone)
            model, self.tokenizer = load_backbone(str(pretrained.backbone), None, dropout)
            _add_tokens(model, self.tokenizer, pretrained.added_tokens)
        # the text encoder records attention only when it encodes the documents
        self.encoder = Encoder(
            model,
            record_attention=self.compressor.needs_attention and self.document_modality == "text",
            attention_rows=self.compressor.attention_rows,
        )
        hidden = self.encoder.hidden_size
        self.projection = self._projection(hidden, dim, pretrained)
        self.dim = self.projection.out_features

        def setting(value: Any, name: str, default: Any) -> Any:
            if value is not None:
                return value
            return getattr(pretrained, name) if pretrained is not None else default

        self.query_length = int(setting(query_length, "query_length", 32))
        self.doc_length = int(setting(doc_length, "doc_length", 300))
        self.query_augmentation = bool(setting(query_augmentation, "query_augmentation", False))
        self.attend_to_augmentation = bool(
            setting(attend_to_augmentation, "attend_to_augmentation", False)
        )
        self.query_marker_id = self._token_id(
            setting(query_marker, "query_marker", None), "model.query_marker"
        )
        self.doc_marker_id = self._token_id(
            setting(doc_marker, "doc_marker", None), "model.doc_marker"
        )
        self.prompt = pretrained.prompt if pretrained is not None else ""
        self.strip = pretrained is not None and pretrained.strip
        self.lowercase = pretrained is not None and pretrained.lowercase
        if skip_punctuation is False:
            skip: set[int] = set()
        elif pretrained is not None:
            skip = self._skiplist_ids(pretrained.skiplist, pretrained.skiplist_by)
        else:
            skip = self._punctuation_ids()
        self.skip_ids = torch.tensor(sorted(skip), dtype=torch.long)
        self.init_compressor_from_backbone()

    def init_compressor_from_backbone(self) -> None:
        """Let the compressor initialise parameters from the backbone's embeddings
        (:meth:`~colcompress.compressors.base.Compressor.init_from_backbone`)."""
        self.compressor.init_from_backbone(
            self.encoder.model, int(self.tokenizer.cls_token_id), self.doc_length
        )

    @staticmethod
    def _projection(hidden: int, dim: int | None, pretrained: Pretrained | None) -> nn.Linear:
        if pretrained is None:
            projection = nn.Linear(hidden, dim or hidden, bias=False)
            if dim is None:
                nn.init.eye_(projection.weight)
            return projection
        if pretrained.hidden_size != hidden:
            raise ValueError(
                f"{pretrained.folder}: the projection takes {pretrained.hidden_size}-d states "
                f"but the encoder's hidden size is {hidden}"
            )
        if dim is not None and dim != pretrained.dim:
            raise ValueError(
                f"model.dim={dim} but {pretrained.folder} projects to {pretrained.dim}: "
                "set model.dim=null to use the checkpoint's projection"
            )
        projection = nn.Linear(hidden, pretrained.dim, bias=False)
        with torch.no_grad():
            projection.weight.copy_(pretrained.projection)
        return projection

    def _token_id(self, token: str | None, option: str) -> int | None:
        if not token:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(
                f"{option}={token!r} is not a single token of the backbone's vocabulary"
            )
        return int(token_id)

    def _skiplist_ids(self, words: tuple[str, ...], by: str) -> set[int]:
        """Token ids of skiplist words, as the checkpoint's library computes them."""
        if by == "vocabulary":
            return {int(self.tokenizer.convert_tokens_to_ids(word)) for word in words}
        ids = (self.tokenizer.encode(word, add_special_tokens=False) for word in words)
        return {int(token_ids[0]) for token_ids in ids if token_ids}

    def _punctuation_ids(self) -> set[int]:
        ids = set()
        for symbol in string.punctuation:
            token_ids = self.tokenizer.encode(symbol, add_special_tokens=False)
            if len(token_ids) == 1:
                ids.add(token_ids[0])
        return ids

    # ----------------------------------------------------------------- tokenize
    def _prepare(self, texts: list[str]) -> list[str]:
        """Texts as the checkpoint's library hands them to its tokenizer."""
        texts = [self.prompt + text for text in texts]
        if self.strip:
            texts = [text.strip() for text in texts]
        if self.lowercase:
            texts = [text.lower() for text in texts]
        return texts

    def _tokenize(
        self, texts: list[str], length: int, marker: int | None, pad_to_length: bool = False
    ) -> Tokenized:
        room = length - (marker is not None)
        enc = self.tokenizer(
            self._prepare(texts),
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
        """Tokenise queries (with [MASK] augmentation when configured: every [MASK]
        is scored, and attended to only with ``attend_to_augmentation``)."""
        tok = self._tokenize(
            texts, self.query_length, self.query_marker_id, self.query_augmentation
        )
        if not self.query_augmentation:
            return tok
        pad = tok.input_ids == self.tokenizer.pad_token_id
        ids = tok.input_ids.masked_fill(pad, self.tokenizer.mask_token_id)
        attention = tok.attention_mask
        if self.attend_to_augmentation:
            attention = torch.ones_like(attention)
        return Tokenized(ids, attention, torch.ones_like(tok.mask))

    @property
    def max_input_length(self) -> int:
        """The longest input the backbone takes (its position embeddings)."""
        return int(self.encoder.model.config.max_position_embeddings)

    def query_token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens of each query as :meth:`tokenize_queries` would take it uncut
        (special tokens and the query marker included, before augmentation)."""
        enc = self.tokenizer(self._prepare(texts), add_special_tokens=True, truncation=False)
        marker = self.query_marker_id is not None
        return [len(ids) + marker for ids in enc["input_ids"]]

    def document_input(self, doc_id: str, doc: Doc) -> str:
        """What :meth:`tokenize_documents` takes for a corpus document: its full text.

        Raises
        ------
        ValueError
            The document has media but no text (a text model would index it empty).
        """
        if not doc.full_text and doc.media:
            raise ValueError(
                f"document {doc_id!r} has no text, only media ({', '.join(map(str, doc.media))}): "
                f"this model encodes {self.document_modality} documents; choose a model for "
                "its media (model=vit_minilm for images)"
            )
        return doc.full_text

    def tokenize_documents(self, texts: list[str], length: int | None = None) -> Tokenized:
        """Tokenise documents (to ``length`` tokens, default ``doc_length``), masking
        punctuation vectors when configured."""
        tok = self._tokenize(texts, length or self.doc_length, self.doc_marker_id)
        if self.skip_ids.numel():
            tok.mask &= ~torch.isin(tok.input_ids, self.skip_ids)
        return tok

    def _document_states(
        self, batch: Tokenized, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        """Encode a document batch (with ``extra`` appended tokens) into token states."""
        return self.encoder(
            batch.input_ids,
            batch.attention_mask,
            extra_embeddings=extra,
            output_attentions=output_attentions,
        )

    def _query_states(self, batch: Tokenized, output_attentions: bool) -> TokenStates:
        """Encode a query batch into token states."""
        return self.encoder(
            batch.input_ids, batch.attention_mask, output_attentions=output_attentions
        )


def _add_tokens(model: nn.Module, tokenizer: Any, tokens: tuple[str, ...]) -> None:
    """Add ``tokens`` to the tokenizer (those it lacks) and grow the input embeddings
    to match, as PyLate does with its prefixes."""
    if not tokens:
        return
    tokenizer.add_tokens(list(tokens))
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
