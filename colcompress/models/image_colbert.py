"""Late interaction between text queries and image documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from colcompress.compressors.base import Compressor
from colcompress.data.beir import Doc
from colcompress.data.media import load_image
from colcompress.models.colbert import ColBERT
from colcompress.models.images import ImageInput, Pixels, center_crop, pixel_batch
from colcompress.models.states import TokenStates
from colcompress.models.vision import VisionEncoder, load_vision_tower

#: CLIP's per-channel pixel statistics (its preprocessing's defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageColBERT(ColBERT):
    """Text queries against image documents whose visual tokens are the document vectors.

    Queries go through the text backbone and its projection exactly as in
    :class:`~colcompress.models.colbert.ColBERT`. A document is one image: it is
    resized and centre-cropped to the tower's image size, normalised, and encoded
    by a vision tower (:class:`~colcompress.models.vision.VisionEncoder`); its
    visual tokens (the patch tokens, after a class token where the tower has one)
    are projected by a projection of their own to the same ``dim``. The compressor
    works on the visual token sequence as on a text's tokens: memory tokens and
    universal queries are appended after the visual tokens, and H-Pool's protected
    tokens are the leading ones (CLIP's class token).

    Parameters
    ----------
    backbone : str
        The query encoder (see :class:`ColBERT`).
    vision_config : dict or None
        ``model_type`` and config values of an untrained vision tower (e.g.
        ``{"model_type": "clip_vision_model", "hidden_size": 256, ...}``).
    vision_backbone : str or None
        A pretrained vision tower's folder instead.
    image_mean, image_std : sequence of float
        Per-channel normalisation of pixels in ``[0, 1]`` (CLIP's by default).
    compressor : Compressor or None
    dim : int or None
        Shared vector dimension; None: the query backbone's hidden size.
    query_length : int
    doc_length : int or None
        Visual tokens per image; None takes the tower's. A value is checked against
        the tower (configs interpolate it, e.g. SeqResize's input length).
    query_augmentation, attend_to_augmentation, query_marker, normalize, scoring,
    dropout, random_config
        The query side's settings, as in :class:`ColBERT`.

    Raises
    ------
    ValueError
        A compressor that needs a text vocabulary (IDF pruning) or initialises its
        tokens from a text backbone (``init=backbone``), or a ``doc_length`` that is
        not the tower's number of visual tokens.
    """

    document_modality = "image"

    def __init__(
        self,
        backbone: str = "minilm",
        vision_config: dict[str, Any] | None = None,
        vision_backbone: str | None = None,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        compressor: Compressor | None = None,
        dim: int | None = 128,
        query_length: int = 32,
        doc_length: int | None = None,
        query_augmentation: bool = False,
        attend_to_augmentation: bool = False,
        query_marker: str | None = None,
        normalize: str = "l2",
        scoring: str = "maxsim",
        dropout: float | None = None,
        random_config: dict[str, Any] | None = None,
    ) -> None:
        if compressor is not None and compressor.needs_corpus_idf:
            raise ValueError(
                f"{type(compressor).__name__} prunes by the IDF of text token ids; image "
                "documents have no vocabulary"
            )
        if getattr(compressor, "init", None) == "backbone":
            raise ValueError(
                "compressor.init=backbone builds tokens from a text backbone's word and "
                "position embeddings; image documents take compressor.init=normal"
            )
        tower = load_vision_tower(
            None if vision_config is None else dict(vision_config), vision_backbone
        )
        vision = VisionEncoder(
            tower,
            record_attention=compressor is not None and compressor.needs_attention,
            attention_rows=compressor.attention_rows if compressor is not None else "all",
        )
        if doc_length is not None and doc_length != vision.num_tokens:
            raise ValueError(
                f"model.doc_length={doc_length}, but the vision tower gives "
                f"{vision.num_tokens} visual tokens per image ({vision.image_size} pixels, "
                f"patches of {vision.patch_size}): set model.doc_length={vision.num_tokens}"
            )
        super().__init__(
            backbone,
            compressor,
            dim=dim,
            query_length=query_length,
            doc_length=vision.num_tokens,
            query_augmentation=query_augmentation,
            attend_to_augmentation=attend_to_augmentation,
            query_marker=query_marker,
            skip_punctuation=False,
            normalize=normalize,
            scoring=scoring,
            dropout=dropout,
            random_config=random_config,
        )
        if len(image_mean) != len(image_std) or len(image_mean) != tower.config.num_channels:
            raise ValueError(
                f"model.image_mean and model.image_std need one value per channel "
                f"({tower.config.num_channels}), got {list(image_mean)} and {list(image_std)}"
            )
        self.vision = vision
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        self.doc_projection = nn.Linear(vision.hidden_size, self.dim, bias=False)

    def init_compressor_from_backbone(self) -> None:
        """Nothing to initialise: ``init=backbone`` is refused for image documents."""

    @property
    def encoders(self) -> tuple[nn.Module, ...]:
        """The query (text) encoder and the vision tower."""
        return (self.encoder, self.vision)

    @property
    def projections(self) -> tuple[nn.Linear, ...]:
        """The query projection and the document projection."""
        return (self.projection, self.doc_projection)

    @property
    def document_projection(self) -> nn.Linear:
        """The projection of visual token states."""
        return self.doc_projection

    def document_input(self, doc_id: str, doc: Doc) -> ImageInput:
        """The document's image (its text, if any, is not encoded).

        Raises
        ------
        ValueError
            The document has no image, or several.
        """
        return ImageInput.of(doc_id, doc, type(self).__name__)

    def tokenize_documents(self, images: list[ImageInput], length: int | None = None) -> Pixels:
        """Read, crop and normalise images into a batch.

        Parameters
        ----------
        images : list of ImageInput
        length : int or None
            A cap on the tokens of a document (``training.doc_length``): images are
            not cut, so it must be at least :attr:`doc_length` (or None).

        Raises
        ------
        MediaError
            An image file is missing or corrupt (the message names the document and
            the file).
        ValueError
            ``length`` is below the visual tokens of an image.
        """
        if length is not None and length < self.doc_length:
            raise ValueError(
                f"training.doc_length={length} would cut images of {self.doc_length} visual "
                "tokens: set training.doc_length=null"
            )
        crops = [
            center_crop(load_image(item.path, item.doc_id), self.vision.image_size)
            for item in images
        ]
        return pixel_batch(
            crops, self.image_mean, self.image_std, self.vision.patch_size, self.doc_length
        )

    def _document_states(
        self, batch: Pixels, extra: Tensor | None, output_attentions: bool
    ) -> TokenStates:
        return self.vision(
            batch.pixel_values,
            batch.input_ids,
            extra_embeddings=extra,
            output_attentions=output_attentions,
        )
