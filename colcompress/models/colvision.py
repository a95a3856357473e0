"""ColQwen2 and ColPali (transformers' ``ColQwen2ForRetrieval``, ``ColPaliForRetrieval``)
loaded as they are: their processor, their language model's own attention mask and
positions, their projection and L2 normalisation."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    ColPaliConfig,
    ColPaliForRetrieval,
    ColPaliProcessor,
    ColQwen2Config,
    ColQwen2ForRetrieval,
    ColQwen2Processor,
    Qwen2VLImageProcessorPil,
    SiglipImageProcessorPil,
)

from colcompress.compressors.base import Compressor
from colcompress.data.beir import Doc
from colcompress.data.media import load_image
from colcompress.hub import local_folder
from colcompress.models.backbone import resolve_backbone
from colcompress.models.images import ImageInput
from colcompress.models.late_interaction import LateInteraction
from colcompress.models.states import TokenStates
from colcompress.models.vlm import VLMEncoder, plain_config, set_dropout, weights_dtype
from colcompress.models.vlm_inputs import QWEN_VL_TOKENS, VLMBatch, add_media_tokens

KINDS = {
    "colqwen2": (ColQwen2ForRetrieval, ColQwen2Processor),
    "colpali": (ColPaliForRetrieval, ColPaliProcessor),
}


def _untrained_colqwen2(options: dict[str, Any], tokenizer: Any) -> tuple[nn.Module, Any]:
    """An untrained ColQwen2 and its processor around ``tokenizer`` (vision tokens added)."""
    add_media_tokens(tokenizer, QWEN_VL_TOKENS)
    pixels = {k: options.pop(k) for k in ("min_pixels", "max_pixels") if k in options}
    processor = ColQwen2Processor(
        image_processor=Qwen2VLImageProcessorPil(**pixels), tokenizer=tokenizer
    )
    vlm = dict(options.pop("vlm_config", {}))
    text = dict(vlm.pop("text_config", {}))
    text.update(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=None)
    ids = tokenizer.convert_tokens_to_ids
    vlm.update(
        model_type="qwen2_vl",
        text_config=text,
        image_token_id=ids(QWEN_VL_TOKENS.image),
        video_token_id=ids(QWEN_VL_TOKENS.video),
        vision_start_token_id=ids(QWEN_VL_TOKENS.vision_start),
    )
    return ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, **options)), processor


def _untrained_colpali(options: dict[str, Any], tokenizer: Any) -> tuple[nn.Module, Any]:
    """An untrained ColPali and its processor around ``tokenizer`` (which adds ``<image>``)."""
    if tokenizer.bos_token is None:  # ColPali's prompts start with it
        tokenizer.bos_token = tokenizer.cls_token
    vlm = dict(options.pop("vlm_config", {}))
    vision = dict(vlm.get("vision_config", {}))
    size, patch = int(vision["image_size"]), int(vision["patch_size"])
    image_processor = SiglipImageProcessorPil(size={"height": size, "width": size})
    image_processor.image_seq_length = (size // patch) ** 2
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = dict(vlm.pop("text_config", {}))
    text["vocab_size"] = len(tokenizer)
    vlm.update(model_type="paligemma", text_config=text, image_token_id=processor.image_token_id)
    return ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, **options)), processor


def load_colvision(
    backbone: str | None,
    random_config: dict[str, Any] | None,
    tokenizer: str | None,
    dtype: str | None = None,
) -> tuple[nn.Module, Any]:
    """Load a ColQwen2 or ColPali model and its processor.

    Parameters
    ----------
    backbone : str or None
        A hub id or folder of a transformers ColQwen2 / ColPali model
        (``vidore/colqwen2-v1.0-hf``, ``vidore/colpali-v1.3-hf``).
    random_config : dict or None
        Instead: an untrained model's config, ``model_type`` (``colqwen2`` |
        ``colpali``), ``vlm_config`` values and ``embedding_dim`` (ColQwen2 also
        takes ``min_pixels`` and ``max_pixels``); tests.
    tokenizer : str or None
        The text tokenizer of an untrained model's processor (``"minilm"``, a hub id
        or a folder).
    dtype : {"float32", "bfloat16", "float16"} or None
        Weights' dtype of a pretrained model (None: float32).

    Returns
    -------
    (model, processor)
        A ``ColQwen2ForRetrieval`` or ``ColPaliForRetrieval`` in training mode.
    """
    if (backbone is None) == (random_config is None):
        raise ValueError(
            "give one of model.backbone (a ColQwen2 / ColPali hub id or folder) and "
            "model.random_config (an untrained model's config)"
        )
    if backbone is not None:
        folder = local_folder(backbone, "model.backbone")
        kind = AutoConfig.from_pretrained(folder).model_type
        if kind not in KINDS:
            raise ValueError(
                f"model.backbone={backbone!r} is a {kind} model; expected one of {sorted(KINDS)}"
            )
        model_class, processor_class = KINDS[kind]
        model = model_class.from_pretrained(folder, dtype=weights_dtype(dtype))
        processor = processor_class.from_pretrained(folder)
    else:
        options = plain_config(random_config)
        kind = options.pop("model_type", None)
        if kind not in KINDS:
            raise ValueError(
                f"model.random_config.model_type={kind!r}; expected one of {sorted(KINDS)}"
            )
        if tokenizer is None:
            raise ValueError("model.tokenizer is needed with model.random_config (e.g. minilm)")
        text = AutoTokenizer.from_pretrained(resolve_backbone(tokenizer))
        build = _untrained_colqwen2 if kind == "colqwen2" else _untrained_colpali
        model, processor = build(options, text)
    model.train()
    return model, processor


class ColVision(LateInteraction):
    """A ColQwen2 or ColPali retriever: text queries against page images.

    Queries and images go through the model's processor (its prompts, its query
    augmentation tokens) and its language model with the model's own attention mask
    (causal for ColQwen2, bidirectional over PaliGemma's prefix) and positions (those
    transformers' ``ColQwen2ForRetrieval`` gives: ``0 .. N - 1``); every token's last
    hidden state goes through the model's projection and is L2-normalised, so the
    uncompressed vectors are the model's own ``embeddings`` output. Every token of a
    document (prompt and visual tokens) is a document vector, as in the ColPali
    libraries. A compressor's learnable tokens are appended after each document's
    tokens.

    Parameters
    ----------
    backbone, random_config, tokenizer, dtype
        See :func:`load_colvision`.
    compressor : Compressor or None
    dim : int or None
        None, or the model's embedding dimension (checked): the projection is the
        model's.
    query_length : int
        Cap on a query's tokens as the processor gives them (prefix and augmentation
        tokens included).
    doc_length : int
        Cap on a document's tokens: a longer page is refused (documents are never cut).
    dropout : float or None
        Dropout probability of the model in training
        (:func:`~colcompress.models.vlm.set_dropout`); None keeps the model's own.
    """

    document_modality = "image"

    def __init__(
        self,
        backbone: str | None = None,
        random_config: dict[str, Any] | None = None,
        tokenizer: str | None = None,
        compressor: Compressor | None = None,
        dim: int | None = None,
        query_length: int = 128,
        doc_length: int = 1024,
        dropout: float | None = None,
        dtype: str | None = None,
    ) -> None:
        if getattr(compressor, "init", None) == "backbone":
            raise ValueError(
                "compressor.init=backbone builds tokens from a BERT-style backbone's word and "
                "position embeddings; ColQwen2 and ColPali take compressor.init=normal"
            )
        super().__init__(compressor, normalize="l2", scoring="maxsim")
        model, self.processor = load_colvision(backbone, random_config, tokenizer, dtype)
        if dim is not None and dim != model.embedding_dim:
            raise ValueError(
                f"model.dim={dim} but the model projects to {model.embedding_dim}: set "
                "model.dim=null to use its projection"
            )
        if dropout is not None:
            set_dropout(model, dropout)
        self.format = "transformers"
        self.kind = model.config.model_type
        self.tokenizer = self.processor.tokenizer
        self.encoder = VLMEncoder(
            model.vlm,
            bidirectional=False,
            mrope=False,
            record_attention=self.compressor.needs_attention,
            attention_rows=self.compressor.attention_rows,
        )
        self.projection = model.embedding_proj_layer
        self.dim = self.projection.out_features
        self.query_length = int(query_length)
        self.doc_length = int(doc_length)

    @classmethod
    def config_sizes(cls, model_cfg: Any) -> tuple[int, int]:
        """The language model's hidden size and the model's embedding dimension."""
        if model_cfg.get("backbone") is not None:
            config = AutoConfig.from_pretrained(
                local_folder(model_cfg["backbone"], "model.backbone")
            )
            return int(config.vlm_config.get_text_config().hidden_size), int(config.embedding_dim)
        options = plain_config(model_cfg["random_config"])
        kind = options.get("model_type")
        if kind not in KINDS:
            raise ValueError(
                f"model.random_config.model_type={kind!r}; expected one of {sorted(KINDS)}"
            )
        config_class, vlm_type = {
            "colqwen2": (ColQwen2Config, "qwen2_vl"),
            "colpali": (ColPaliConfig, "paligemma"),
        }[kind]
        text = (options.get("vlm_config") or {}).get("text_config") or {}
        config = config_class(
            vlm_config={"model_type": vlm_type, "text_config": text},
            embedding_dim=options.get("embedding_dim", 128),
        )
        return int(config.vlm_config.get_text_config().hidden_size), int(config.embedding_dim)

    @property
    def max_input_length(self) -> int:
        """The longest sequence the language model's positions were trained for."""
        return self.encoder.max_positions

    def _batch(self, out: Any) -> VLMBatch:
        attention = out["attention_mask"]
        features = {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask")}
        features.pop("labels", None)
        if self.kind == "colqwen2" and "pixel_values" in features:
            # the processor pads each image's patches to the longest: keep the real ones
            grids = features["image_grid_thw"]
            counts = (grids[:, 1] * grids[:, 2]).tolist()
            features["pixel_values"] = torch.cat(
                [pixels[:count] for pixels, count in zip(features["pixel_values"], counts)]
            )
        return VLMBatch(out["input_ids"], attention, attention.bool(), features)

    def query_token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens of each query as the processor gives it (prefix and augmentation included)."""
        return [
            int(self.processor.process_queries(text=[t])["attention_mask"].sum()) for t in texts
        ]

    def tokenize_queries(self, texts: list[str]) -> VLMBatch:
        """Queries through the processor, cut to ``query_length`` tokens."""
        batch = self._batch(self.processor.process_queries(text=list(texts)))
        if batch.input_ids.shape[1] <= self.query_length:
            return batch
        keep = slice(0, self.query_length)
        features = {k: v[:, keep] for k, v in batch.features.items()}
        return VLMBatch(
            batch.input_ids[:, keep], batch.attention_mask[:, keep], batch.mask[:, keep], features
        )

    def document_input(self, doc_id: str, doc: Doc) -> ImageInput:
        """The document's page image.

        Raises
        ------
        ValueError
            The document has no image, or several.
        """
        return ImageInput.of(doc_id, doc, type(self).__name__)

    def tokenize_documents(self, images: list[ImageInput], length: int | None = None) -> VLMBatch:
        """Read the images and run them through the processor.

        Raises
        ------
        MediaError
            An image file is missing or corrupt.
        ValueError
            A page gives more than ``length`` (default ``doc_length``) tokens.
        """
        pages: list[Image.Image] = [load_image(item.path, item.doc_id) for item in images]
        batch = self._batch(self.processor.process_images(images=pages))
        cap = length or self.doc_length
        counts = batch.attention_mask.sum(1).tolist()
        for item, count in zip(images, counts):
            if count > cap:
                raise ValueError(
                    f"document {item.doc_id!r}: {count} tokens exceed model.doc_length={cap} "
                    "(pages are not cut): raise model.doc_length"
                )
        return batch

    def _query_states(self, batch: VLMBatch, output_attentions: bool) -> TokenStates:
        return self.encoder(batch, None, output_attentions)

    def _document_states(
        self, batch: VLMBatch, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        return self.encoder(batch, extra, output_attentions)
