"""Late interaction through Qwen2.5-VL or Qwen2.5-Omni: one model for text queries and
documents of text, images, page images, video (and audio)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from colcompress.compressors.base import Compressor
from colcompress.data.beir import Doc
from colcompress.models.late_interaction import LateInteraction
from colcompress.models.qwen_loading import KINDS, load_qwen, text_hidden_size
from colcompress.models.states import TokenStates
from colcompress.models.vlm import VLMEncoder, set_dropout
from colcompress.models.vlm_inputs import MediaInput, QwenInputs, VLMBatch


class QwenVLColBERT(LateInteraction):
    """Queries and documents of any modality through one Qwen2.5-VL model.

    A query is ``query_prefix`` and its text; a document is ``doc_prefix``, its
    images (a photo, or the pages of a document), its video's sampled frames and its
    text (:mod:`colcompress.models.vlm_inputs`). Both run through the same model with
    bidirectional attention (every token attends to every real token) and its last
    hidden states, for every real token, are projected to ``dim`` by one projection.
    A compressor's learnable tokens (memory tokens, universal queries) are appended
    after each document's tokens inside the language model's input sequence, at the
    positions after its last one; AGC reads the last layer's attention of those
    tokens over the document's tokens (recorded with eager attention in that layer).

    Parameters
    ----------
    backbone, random_config, tokenizer, min_pixels, max_pixels, dtype
        See :func:`~colcompress.models.qwen_loading.load_qwen`.
    compressor : Compressor or None
    dim : int or None
        Projection dimension; None keeps the hidden size (identity projection).
    query_prefix, doc_prefix : str
    query_length : int
        Tokens of a query, prefix included (longer queries are cut).
    doc_length : int
        Tokens of a document, prefix and visual tokens included: its text is cut to
        fit; a document whose visual tokens alone do not fit is refused.
    num_frames : int
        Frames sampled uniformly from a video (24 in Qin et al. 2026).
    video_max_pixels : int or None
        Pixels a video frame is resized to at most (None: ``max_pixels``).
    video_fps : float
        Frames a second the sampled frames are taken to be at (temporal positions).
    bidirectional : bool
        Non-causal attention, as Qin et al. 2026 use the model; False keeps its
        causal mask.
    normalize, scoring
        See :class:`~colcompress.models.late_interaction.LateInteraction`.
    dropout : float or None
        Dropout probability of the model in training
        (:func:`~colcompress.models.vlm.set_dropout`); None keeps the model's own.

    Raises
    ------
    ValueError
        A compressor that initialises its tokens from a text backbone's position
        embeddings (``init=backbone``).
    """

    document_modality = "multimodal"
    #: The model family (:data:`~colcompress.models.qwen_loading.KINDS`).
    kind = "vl"

    def __init__(
        self,
        backbone: str | None = None,
        random_config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        compressor: Compressor | None = None,
        dim: int | None = 128,
        query_prefix: str = "Query: ",
        doc_prefix: str = "Passage: ",
        query_length: int = 32,
        doc_length: int = 1024,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        num_frames: int = 24,
        video_max_pixels: int | None = None,
        video_fps: float = 2.0,
        bidirectional: bool = True,
        normalize: str = "l2",
        scoring: str = "maxsim",
        dropout: float | None = None,
        dtype: str | None = None,
    ) -> None:
        if getattr(compressor, "init", None) == "backbone":
            raise ValueError(
                "compressor.init=backbone builds tokens from a BERT-style backbone's word and "
                f"position embeddings; {KINDS[self.kind][1]} takes compressor.init=normal"
            )
        super().__init__(compressor, normalize, scoring)
        parts = load_qwen(
            self.kind, backbone, random_config, tokenizer, min_pixels, max_pixels, dtype
        )
        if dropout is not None:
            set_dropout(parts.model, dropout)
        self.format = "hf"
        self.tokenizer = parts.tokenizer
        self.inputs = QwenInputs(
            parts.tokenizer,
            parts.image_processor,
            query_prefix,
            doc_prefix,
            num_frames,
            video_max_pixels,
            video_fps,
            tokens=KINDS[self.kind][0],
            audio_processor=parts.audio_processor,
        )
        self.encoder = VLMEncoder(
            parts.model,
            bidirectional,
            record_attention=self.compressor.needs_attention,
            attention_rows=self.compressor.attention_rows,
        )
        hidden = self.encoder.hidden_size
        self.projection = nn.Linear(hidden, dim or hidden, bias=False)
        if dim is None:
            nn.init.eye_(self.projection.weight)
        self.dim = self.projection.out_features
        self.query_length = int(query_length)
        self.doc_length = int(doc_length)

    @classmethod
    def config_sizes(cls, model_cfg: Any) -> tuple[int, int]:
        """The language model's hidden size and the vector dimension."""
        hidden = text_hidden_size(
            cls.kind, model_cfg.get("backbone"), model_cfg.get("random_config")
        )
        return hidden, int(model_cfg.get("dim") or hidden)

    @property
    def max_input_length(self) -> int:
        """The longest sequence the language model's positions were trained for."""
        return self.encoder.max_positions

    def query_token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens of each query with its prefix, uncut."""
        return self.inputs.text_lengths(texts, is_query=True)

    def tokenize_queries(self, texts: list[str]) -> VLMBatch:
        """Prefixed queries, cut to ``query_length`` tokens."""
        return self.inputs.queries(texts, self.query_length)

    def document_input(self, doc_id: str, doc: Doc) -> MediaInput:
        """The document's text, images and video (read when the batch is built); its
        audio, if any, is not read (:class:`QwenOmniColBERT` reads it).

        Raises
        ------
        ValueError
            The document has audio only.
        """
        if doc.audio is not None and not (doc.full_text or doc.images or doc.video):
            raise ValueError(
                f"document {doc_id!r} has only audio ({doc.audio}): {type(self).__name__} "
                "reads text, images and video"
            )
        return MediaInput(doc_id, doc.full_text, doc.images, doc.video)

    def tokenize_documents(self, docs: list[MediaInput], length: int | None = None) -> VLMBatch:
        """Read and batch documents, each in at most ``length`` tokens (default
        ``doc_length``; see :meth:`QwenInputs.documents`)."""
        return self.inputs.documents(docs, length or self.doc_length)

    def _query_states(self, batch: VLMBatch, output_attentions: bool) -> TokenStates:
        return self.encoder(batch, None, output_attentions)

    def _document_states(
        self, batch: VLMBatch, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        return self.encoder(batch, extra, output_attentions)


class QwenOmniColBERT(QwenVLColBERT):
    """Queries and documents of any modality, audio included, through Qwen2.5-Omni's
    thinker (its audio tower, vision tower and language model; not its speech
    generator).

    As :class:`QwenVLColBERT`; a document's audio (the corpus field ``audio``, which
    may name a video's file for its sound track) becomes Whisper log-mel features
    encoded by the audio tower, placed after its images and video between the audio
    start and end tokens. Video and audio are separate blocks with positions of their
    own (not interleaved in time).
    """

    kind = "omni"

    def document_input(self, doc_id: str, doc: Doc) -> MediaInput:
        """The document's text, images, video and audio (read when the batch is built)."""
        return MediaInput(doc_id, doc.full_text, doc.images, doc.video, doc.audio)
