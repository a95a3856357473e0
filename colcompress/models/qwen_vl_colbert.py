"""Late interaction through Qwen2.5-VL: one model for text queries and documents of text,
images, page images or video."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLModel,
    Qwen2_5_VLTextConfig,
    Qwen2VLImageProcessorPil,
)

from colcompress.compressors.base import Compressor
from colcompress.data.beir import Doc
from colcompress.hub import local_folder
from colcompress.models.backbone import resolve_backbone
from colcompress.models.late_interaction import LateInteraction
from colcompress.models.states import TokenStates
from colcompress.models.vlm import VLMEncoder, plain_config, set_dropout, weights_dtype
from colcompress.models.vlm_inputs import (
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_START,
    MediaInput,
    QwenVLInputs,
    VLMBatch,
    add_vision_tokens,
)


def untrained_config(random_config: dict[str, Any], tokenizer: Any) -> Any:
    """A ``Qwen2_5_VLConfig`` from ``random_config`` whose vocabulary and vision token ids
    are the tokenizer's.

    Parameters
    ----------
    random_config : dict
        ``text_config`` and ``vision_config`` values (sizes, layers, heads, ...).
    tokenizer
        Holds the vision tokens (:func:`~colcompress.models.vlm_inputs.add_vision_tokens`).
    """
    options = plain_config(random_config)
    text = options.pop("text_config", {})
    text.update(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=None)
    text["pad_token_id"] = tokenizer.pad_token_id
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config=text,
        image_token_id=ids(IMAGE_PAD),
        video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START),
        **options,
    )


def load_qwen_vl(
    backbone: str | None,
    random_config: dict[str, Any] | None,
    tokenizer: str | None,
    min_pixels: int | None,
    max_pixels: int | None,
    dtype: str | None = None,
) -> tuple[nn.Module, Any, Any]:
    """Load a Qwen2.5-VL model, its tokenizer and its image processor.

    Parameters
    ----------
    backbone : str or None
        A hub id or folder of a Qwen2.5-VL model (``Qwen/Qwen2.5-VL-3B-Instruct``):
        its weights, tokenizer and image processor.
    random_config : dict or None
        Instead of a backbone: the config values of an untrained model
        (:func:`untrained_config`; tests).
    tokenizer : str or None
        A text tokenizer (``"minilm"``, a hub id or a folder) to use instead of the
        backbone's; the vision tokens are added to it. Needed without a backbone.
    min_pixels, max_pixels : int or None
        Pixel range images are resized into (null: the image processor's).
    dtype : {"float32", "bfloat16", "float16"} or None
        Weights' dtype of a pretrained model (None: float32).

    Returns
    -------
    (model, tokenizer, image_processor)
        A ``Qwen2_5_VLModel`` in training mode, a tokenizer holding the vision
        tokens, a ``Qwen2VLImageProcessorPil``.
    """
    if (backbone is None) == (random_config is None):
        raise ValueError(
            "give one of model.backbone (a Qwen2.5-VL hub id or folder) and "
            "model.random_config (an untrained model's config)"
        )
    folder = None if backbone is None else local_folder(backbone, "model.backbone")
    if tokenizer is None and folder is None:
        raise ValueError("model.tokenizer is needed with model.random_config (e.g. minilm)")
    text = AutoTokenizer.from_pretrained(
        resolve_backbone(tokenizer) if tokenizer is not None else folder
    )
    add_vision_tokens(text)
    size = {}
    if min_pixels is not None:
        size["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        size["max_pixels"] = int(max_pixels)
    if folder is None:
        processor = Qwen2VLImageProcessorPil(**size)
        model = Qwen2_5_VLModel(untrained_config(random_config, text))
    else:
        processor = Qwen2VLImageProcessorPil.from_pretrained(folder, **size)
        model = Qwen2_5_VLModel.from_pretrained(folder, dtype=weights_dtype(dtype))
    model.train()
    return model, text, processor


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
        See :func:`load_qwen_vl`.
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
        Dropout probability of the model in training (:func:`~colcompress.models.vlm.set_dropout`);
        None keeps the model's own (none in Qwen2.5-VL's language model).

    Raises
    ------
    ValueError
        A compressor that initialises its tokens from a text backbone's position
        embeddings (``init=backbone``).
    """

    document_modality = "multimodal"

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
                "position embeddings; Qwen2.5-VL takes compressor.init=normal"
            )
        super().__init__(compressor, normalize, scoring)
        model, self.tokenizer, processor = load_qwen_vl(
            backbone, random_config, tokenizer, min_pixels, max_pixels, dtype
        )
        if dropout is not None:
            set_dropout(model, dropout)
        self.format = "hf"
        self.inputs = QwenVLInputs(
            self.tokenizer,
            processor,
            query_prefix,
            doc_prefix,
            num_frames,
            video_max_pixels,
            video_fps,
        )
        self.encoder = VLMEncoder(
            model, bidirectional, record_attention=self.compressor.needs_attention
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
        if model_cfg.get("backbone") is not None:
            folder = local_folder(model_cfg["backbone"], "model.backbone")
            hidden = AutoConfig.from_pretrained(folder).get_text_config().hidden_size
        else:
            text = plain_config(model_cfg.get("random_config") or {}).get("text_config") or {}
            hidden = Qwen2_5_VLTextConfig(**text).hidden_size
        return int(hidden), int(model_cfg.get("dim") or hidden)

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
        """The document's text, images and video (read when the batch is built).

        Raises
        ------
        ValueError
            The document has audio only (Qwen2.5-VL reads no audio).
        """
        if doc.audio is not None and not (doc.full_text or doc.images or doc.video):
            raise ValueError(
                f"document {doc_id!r} has only audio ({doc.audio}): {type(self).__name__} "
                "reads text, images and video"
            )
        return MediaInput(doc_id, doc.full_text, doc.images, doc.video)

    def tokenize_documents(self, docs: list[MediaInput], length: int | None = None) -> VLMBatch:
        """Read and batch documents, each in at most ``length`` tokens (default
        ``doc_length``; see :meth:`QwenVLInputs.documents`)."""
        return self.inputs.documents(docs, length or self.doc_length)

    def _query_states(self, batch: VLMBatch, output_attentions: bool) -> TokenStates:
        return self.encoder(batch, None, output_attentions)

    def _document_states(
        self, batch: VLMBatch, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        return self.encoder(batch, extra, output_attentions)
