"""Load Qwen2.5-VL and Qwen2.5-Omni (its thinker) with their tokenizer, image processor
and audio feature extractor: pretrained from the hub or a folder, or untrained from a
small config for tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLModel,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniThinkerConfig,
    Qwen2VLImageProcessorPil,
    WhisperFeatureExtractor,
)
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniThinkerModel

from colcompress.hub import local_folder
from colcompress.models.backbone import resolve_backbone
from colcompress.models.vlm import plain_config, weights_dtype
from colcompress.models.vlm_inputs import (
    QWEN_OMNI_TOKENS,
    QWEN_VL_TOKENS,
    MediaTokens,
    add_media_tokens,
)

#: The model families: their media tokens and display names.
KINDS: dict[str, tuple[MediaTokens, str]] = {
    "vl": (QWEN_VL_TOKENS, "Qwen2.5-VL"),
    "omni": (QWEN_OMNI_TOKENS, "Qwen2.5-Omni"),
}


@dataclass
class QwenParts:
    """A loaded model and what turns documents into its inputs.

    Attributes
    ----------
    model : nn.Module
        ``Qwen2_5_VLModel`` or ``Qwen2_5OmniThinkerModel``, in training mode.
    tokenizer
        Holds the family's media tokens.
    image_processor
        A ``Qwen2VLImageProcessorPil``.
    audio_processor
        A ``WhisperFeatureExtractor`` (Omni), else None.
    """

    model: nn.Module
    tokenizer: Any
    image_processor: Any
    audio_processor: Any = None


def untrained_config(kind: str, random_config: Any, tokenizer: Any) -> Any:
    """The config of an untrained model from ``random_config``, its vocabulary and media
    token ids the tokenizer's.

    Parameters
    ----------
    kind : {"vl", "omni"}
    random_config : mapping
        ``text_config`` and ``vision_config`` values (sizes, layers, heads, ...);
        Omni also ``audio_config``.
    tokenizer
        Holds the family's media tokens (:func:`~colcompress.models.vlm_inputs.add_media_tokens`).
    """
    tokens = KINDS[kind][0]
    options = plain_config(random_config)
    text = options.pop("text_config", {})
    text.update(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=None)
    text["pad_token_id"] = tokenizer.pad_token_id
    ids = tokenizer.convert_tokens_to_ids
    if kind == "vl":
        return Qwen2_5_VLConfig(
            text_config=text,
            image_token_id=ids(tokens.image),
            video_token_id=ids(tokens.video),
            vision_start_token_id=ids(tokens.vision_start),
            **options,
        )
    return Qwen2_5OmniThinkerConfig(
        text_config=text,
        image_token_index=ids(tokens.image),
        video_token_index=ids(tokens.video),
        audio_token_index=ids(tokens.audio),
        vision_start_token_id=ids(tokens.vision_start),
        vision_end_token_id=ids(tokens.vision_end),
        audio_start_token_id=ids(tokens.audio_start),
        audio_end_token_id=ids(tokens.audio_end),
        **options,
    )


def load_qwen(
    kind: str,
    backbone: str | None,
    random_config: Any,
    tokenizer: str | None,
    min_pixels: int | None,
    max_pixels: int | None,
    dtype: str | None = None,
) -> QwenParts:
    """Load a Qwen2.5-VL model or Qwen2.5-Omni's thinker and their processors.

    Parameters
    ----------
    kind : {"vl", "omni"}
    backbone : str or None
        A hub id or folder (``Qwen/Qwen2.5-VL-3B-Instruct``, ``Qwen/Qwen2.5-Omni-3B``):
        weights, tokenizer, image processor (and audio feature extractor). Of an Omni
        checkpoint only the thinker is loaded (not the speech generator).
    random_config : mapping or None
        Instead of a backbone: an untrained model's config values
        (:func:`untrained_config`; tests).
    tokenizer : str or None
        A text tokenizer (``"minilm"``, a hub id or a folder) instead of the
        backbone's; the media tokens are added to it. Needed without a backbone.
    min_pixels, max_pixels : int or None
        Pixel range images are resized into (null: the image processor's).
    dtype : {"float32", "bfloat16", "float16"} or None
        Weights' dtype of a pretrained model (None: float32).
    """
    tokens, name = KINDS[kind]
    if (backbone is None) == (random_config is None):
        raise ValueError(
            f"give one of model.backbone (a {name} hub id or folder) and "
            "model.random_config (an untrained model's config)"
        )
    folder = None if backbone is None else local_folder(backbone, "model.backbone")
    if tokenizer is None and folder is None:
        raise ValueError("model.tokenizer is needed with model.random_config (e.g. minilm)")
    text = AutoTokenizer.from_pretrained(
        resolve_backbone(tokenizer) if tokenizer is not None else folder
    )
    add_media_tokens(text, tokens)
    size = {}
    if min_pixels is not None:
        size["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        size["max_pixels"] = int(max_pixels)
    audio = None
    if folder is None:
        images = Qwen2VLImageProcessorPil(**size)
        config = untrained_config(kind, random_config, text)
        if kind == "vl":
            model = Qwen2_5_VLModel(config)
        else:
            model = Qwen2_5OmniThinkerModel(config)
            audio = WhisperFeatureExtractor(feature_size=config.audio_config.num_mel_bins)
    else:
        images = Qwen2VLImageProcessorPil.from_pretrained(folder, **size)
        if kind == "vl":
            model = Qwen2_5_VLModel.from_pretrained(folder, dtype=weights_dtype(dtype))
        else:
            full = Qwen2_5OmniForConditionalGeneration.from_pretrained(
                folder, enable_audio_output=False, dtype=weights_dtype(dtype)
            )
            model = full.thinker.model
            audio = WhisperFeatureExtractor.from_pretrained(folder)
    model.train()
    return QwenParts(model, text, images, audio)


def text_hidden_size(kind: str, backbone: str | None, random_config: Any) -> int:
    """The language model's hidden size, from the configs alone."""
    if backbone is not None:
        config = AutoConfig.from_pretrained(local_folder(backbone, "model.backbone"))
        return int(getattr(config, "thinker_config", config).get_text_config().hidden_size)
    options = plain_config(random_config or {})
    config_class = Qwen2_5_VLConfig if kind == "vl" else Qwen2_5OmniThinkerConfig
    return int(config_class(text_config=options.get("text_config")).get_text_config().hidden_size)
